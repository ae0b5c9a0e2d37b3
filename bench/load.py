"""Load generators for the read-side bench: HTTP GETs against the API and the same SQL
against PostgreSQL, each from a client that is not the bottleneck.

`native` runs `wrk` (HTTP) and `pgbench` (SQL): C clients that spend a small fraction of
a core on what they send, so the server is measured, not the client. `python` (the
fallback where they are not installed: `apt-get install wrk`; pgbench ships with
PostgreSQL's client) runs several client processes, each an event loop of keep-alive
connections with a bare HTTP/1.1 client or a psycopg connection per task.

Either way the API and its plain SQL baseline are driven by clients of one kind, so the
ratio compares servers. Holds no tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

__all__ = ["Load", "Measurement", "native_available"]


@dataclass(frozen=True)
class Measurement:
    rate: float  # requests (or SQL transactions) per second
    mean_ms: float
    errors: int = 0


def native_available() -> bool:
    return bool(shutil.which("wrk") and shutil.which("pgbench"))


@dataclass(frozen=True)
class Load:
    """`connections` concurrent clients for `seconds`, from `processes` client processes
    (wrk threads, pgbench threads, or Python processes)."""

    client: str  # "native" or "python"
    connections: int
    seconds: float
    processes: int = 2

    def http(self, url: str) -> Measurement:
        if self.client == "native":
            return _wrk(url, self.connections, self.seconds, self.processes)
        return self._python(_http_client, url)

    def sql(self, database_url: str, statements: list[str]) -> Measurement:
        """`statements` (literal SQL, no parameters) run in turn as one unit, repeatedly."""
        if self.client == "native":
            return _pgbench(
                database_url, statements, self.connections, self.seconds, self.processes
            )
        return self._python(_sql_client, database_url, statements)

    def _python(self, client: object, *args: object) -> Measurement:
        per_process = [self.connections // self.processes] * self.processes
        for i in range(self.connections % self.processes):
            per_process[i] += 1
        with ProcessPoolExecutor(self.processes, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_run_client, client, n, self.seconds, *args) for n in per_process
            ]
            results = [f.result() for f in futures]
        count = sum(r[0] for r in results)
        total_latency = sum(r[1] for r in results)
        rate = sum(r[0] / r[2] for r in results)
        errors = sum(r[3] for r in results)
        return Measurement(rate, total_latency / max(count, 1) * 1000, errors)


# --- native: wrk and pgbench ------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, connections: int, seconds: float, threads: int) -> Measurement:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(int(seconds), 1)}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    value, unit = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    if socket_errors:
        raise RuntimeError(f"wrk: {socket_errors.group(0)}")
    return Measurement(rate, float(value) * _UNITS[unit], int(errors.group(1)) if errors else 0)


def _pgbench(
    database_url: str, statements: list[str], clients: int, seconds: float, threads: int
) -> Measurement:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("".join(f"{s};\n" for s in statements))
    try:
        out = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                "prepared",  # psycopg prepares a statement run five times on a connection
                f"-c{clients}",
                f"-j{threads}",
                f"-T{max(int(seconds), 1)}",
                "-f",
                script.name,
                database_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    failed = re.search(r"number of failed transactions:\s+(\d+)", out)
    return Measurement(
        float(_find(r"tps = ([\d.]+)", out)),
        float(_find(r"latency average = ([\d.]+) ms", out)),
        int(failed.group(1)) if failed else 0,
    )


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in the load generator's output:\n{text}")
    return found.group(1)


# --- python: client processes ----------------------------------------------------------


def _run_client(client: object, connections: int, seconds: float, *args: object) -> tuple:
    return asyncio.run(client(connections, seconds, *args))  # type: ignore[operator]


async def _timed(
    connections: int, seconds: float, open_one: object, call: object
) -> tuple[int, float, float, int]:
    """(calls, summed latency s, elapsed s, errors) of `connections` tasks calling `call`."""
    handles = [await open_one() for _ in range(connections)]  # type: ignore[operator]
    count, latency, errors = 0, 0.0, 0
    started = time.perf_counter()
    deadline = started + seconds

    async def task(handle: object) -> None:
        nonlocal count, latency, errors
        while (now := time.perf_counter()) < deadline:
            if not await call(handle):  # type: ignore[operator]
                errors += 1
            latency += time.perf_counter() - now
            count += 1

    await asyncio.gather(*(task(h) for h in handles))
    return count, latency, time.perf_counter() - started, errors


async def _http_client(connections: int, seconds: float, url: str) -> tuple:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match, url
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port)

    async def call(handle: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bool:
        reader, writer = handle
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        return head[9:10] in (b"2", b"3")

    return await _timed(connections, seconds, open_one, call)


async def _sql_client(
    connections: int, seconds: float, database_url: str, statements: list[str]
) -> tuple:
    import psycopg

    async def open_one() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(database_url, autocommit=True)

    async def call(conn: psycopg.AsyncConnection) -> bool:
        for statement in statements:
            await (await conn.execute(statement)).fetchall()
        return True

    return await _timed(connections, seconds, open_one, call)
