"""Read-side benchmark: the API against plain SQL for the same rows, and projection
catch-up against the raw rate of reading the event store, all measured in one run.

    .venv/bin/python -m bench.bench_read_side [--executions 100000] [--seconds 5]

Uses throwaway schemas in DATABASE_URL's database and drops them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from dspyops.bootstrap import open_store
from dspyops.projections.event_store import EventStore
from dspyops.projections.projector import Projector
from dspyops.settings import get_settings
from tests.support.read_story import (
    bulk_executions,
    schemas,
    seed_story,
)

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 16
PAGE = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(call: Callable[[], Awaitable[None]], seconds: float) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of `call`, CONCURRENCY at a time for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    return len(latencies) / elapsed, p99


def read_rate(database_url: str, es: str) -> tuple[int, float, float]:
    """Events, raw read rate and read+decode rate of the whole event store (events/s)."""
    store = EventStore(database_url, es)
    try:
        rates = []
        for decode in (False, True):
            count, position, started = 0, 0, time.perf_counter()
            while batch := store.after(position, 1000):
                if decode:
                    for notification in batch:
                        store.decode(notification)
                count += len(batch)
                position = batch[-1].id
            rates.append(count / (time.perf_counter() - started))
    finally:
        store.close()
    return count, rates[0], rates[1]


async def http_vs_sql(database_url: str, rs: str, port: int, seconds: float) -> None:
    base = f"http://127.0.0.1:{port}"
    programs = sql.SQL("{}.programs").format(sql.Identifier(rs))
    executions = sql.SQL("{}.executions").format(sql.Identifier(rs))
    get_program = sql.SQL("SELECT * FROM {} WHERE program_id = %s").format(programs)
    list_executions = sql.SQL(
        "SELECT * FROM {} WHERE program_id = %s ORDER BY position DESC LIMIT %s"
    ).format(executions)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with (
        httpx.AsyncClient(base_url=base, limits=limits) as client,
        AsyncConnectionPool(
            database_url, min_size=CONCURRENCY, max_size=CONCURRENCY, kwargs={"autocommit": True}
        ) as pool,
    ):

        async def api_program() -> None:
            (await client.get("/programs/qa")).raise_for_status()

        async def api_executions() -> None:
            (await client.get(f"/programs/qa/executions?limit={PAGE}")).raise_for_status()

        async def sql_program() -> None:
            async with pool.connection() as conn:
                await (await conn.execute(get_program, ["qa"])).fetchall()

        async def sql_executions() -> None:
            # The route checks the program exists, then reads the page: the same two queries.
            async with pool.connection() as conn:
                await (await conn.execute(get_program, ["qa"])).fetchall()
                await (await conn.execute(list_executions, ["qa", PAGE + 1])).fetchall()

        for name, api_call, sql_call in (
            ("get program", api_program, sql_program),
            (f"list executions ({PAGE}/page)", api_executions, sql_executions),
        ):
            await api_call()  # warm up
            api_rps, api_p99 = await load(api_call, seconds)
            sql_rps, sql_p99 = await load(sql_call, seconds)
            print(
                f"{name:28} API {api_rps:8.0f} req/s p99 {api_p99:6.1f} ms | "
                f"plain SQL {sql_rps:8.0f} q/s p99 {sql_p99:6.1f} ms | "
                f"API/SQL throughput {api_rps / sql_rps:.2f}"
            )


def wait_for_api(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API process exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the API did not answer within 30 s")


@contextmanager
def api_process(database_url: str, es: str, rs: str, **env: str) -> Iterator[int]:
    """A `dspyops api` process on those schemas (no token), answering on the port it
    yields; stopped when the block ends."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DSPYOPS_EVENT_STORE_SCHEMA": es,
        "DSPYOPS_READ_MODEL_SCHEMA": rs,
        **env,
    }
    environment.pop("DSPYOPS_API_TOKEN", None)
    api = subprocess.Popen(
        [sys.executable, "-m", "dspyops.cli.main", "api", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_api(port, api)
        yield port
    finally:
        api.terminate()
        try:
            api.wait(15)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    database_url = get_settings().effective_database_url
    suffix = uuid.uuid4().hex[:8]
    es, rs = f"bench_es_{suffix}", f"bench_rd_{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        started = time.perf_counter()
        seed_story(store)
        bulk_executions(store, "qa", args.executions, batch=1000)
        store.close()
        print(f"stored {args.executions} executions in {time.perf_counter() - started:.1f} s")

        events, raw, decoded = read_rate(database_url, es)
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        started = time.perf_counter()
        applied = projector.catch_up()
        catch_up = applied / (time.perf_counter() - started)
        projector.close()
        print(
            f"event store: {events} events; raw read {raw:,.0f} ev/s, read+decode "
            f"{decoded:,.0f} ev/s; projection catch-up {catch_up:,.0f} ev/s "
            f"(catch-up/raw read {catch_up / raw:.2f}, catch-up/read+decode "
            f"{catch_up / decoded:.2f})"
        )

        with api_process(database_url, es, rs, DSPYOPS_API_POOL_SIZE=str(CONCURRENCY)) as port:
            print(
                f"HTTP: one uvicorn worker, {CONCURRENCY} concurrent clients, {args.seconds} s each"
            )
            asyncio.run(http_vs_sql(database_url, rs, port, args.seconds))


if __name__ == "__main__":
    main()
