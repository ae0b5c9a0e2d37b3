"""Read-side benchmark: the API against two baselines measured in the same run (the same
statements by plain SQL, and an HTTP floor: a constant route on the same server, by the
same client), and projection catch-up against the raw rate of reading the event store.

    .venv/bin/python -m bench.bench_read_side [--executions 100000] [--seconds 3] [--rounds 3]
        [--api-workers N] [--client native|python] [--py-spy FILE] [--catch-up-only]

The load comes from `wrk` and `pgbench` when both are installed (`--client native`),
else from several Python client processes (`bench/load.py`).

Uses throwaway schemas in DATABASE_URL's database and drops them at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from bench.bench_pipeline import summarize_py_spy
from bench.load import Load, Measurement, native_available
from dspyops.api import views
from dspyops.bootstrap import open_store
from dspyops.projections.event_store import EventStore
from dspyops.projections.projector import Projector
from dspyops.projections.read_schema import EXECUTIONS, PROGRAMS
from dspyops.settings import get_settings
from tests.support.read_story import (
    bulk_executions,
    schemas,
    seed_story,
)

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 16
PAGE = 50
# The HTTP floor: the console's entry, a constant redirect that reads no table.
FLOOR = "/ui"
PY_SPY = str(Path(sys.executable).parent / "py-spy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def sql_text(database_url: str, query: sql.Composable) -> str:
    with psycopg.connect(database_url) as conn:
        return query.as_string(conn)


def read_queries(rs: str) -> dict[str, list[sql.Composable]]:
    """The statements each measured route runs, as `api.views` writes them, the program
    id and page size filled in: the plain SQL baseline runs the same text."""
    get_program = sql.SQL("SELECT {} FROM {}.{} WHERE program_id = 'qa'").format(
        sql.SQL(", ").join(map(sql.Identifier, views.PROGRAM_COLUMNS)),
        sql.Identifier(rs),
        sql.Identifier(PROGRAMS.name),
    )
    page = sql.SQL(
        "SELECT {} FROM {}.{} WHERE program_id = 'qa' ORDER BY position DESC LIMIT {}"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, views.EXECUTION_COLUMNS)),
        sql.Identifier(rs),
        sql.Identifier(EXECUTIONS.name),
        sql.Literal(PAGE + 1),
    )
    # The executions route checks the program exists, then reads the page.
    return {"get program": [get_program], f"list executions ({PAGE}/page)": [get_program, page]}


def http_vs_sql(database_url: str, rs: str, port: int, load: Load, rounds: int) -> None:
    """Each measure `rounds` times, interleaved (floor, then each route's API and SQL), the
    best of each printed: other work on a shared machine only ever slows a turn down."""
    base = f"http://127.0.0.1:{port}"
    paths = {
        "get program": "/programs/qa",
        f"list executions ({PAGE}/page)": f"/programs/qa/executions?limit={PAGE}",
    }
    for path in (*paths.values(), FLOOR):  # warm up, and the answers are right
        answer = httpx.get(base + path)
        if not (answer.is_success or answer.is_redirect):
            answer.raise_for_status()
    statements = {
        name: [sql_text(database_url, s) for s in queries]
        for name, queries in read_queries(rs).items()
    }
    turns: dict[str, list[Measurement]] = {}
    for _ in range(rounds):
        turns.setdefault("floor", []).append(load.http(base + FLOOR))
        for name, path in paths.items():
            turns.setdefault(f"{name} API", []).append(load.http(base + path))
            turns.setdefault(f"{name} SQL", []).append(load.sql(database_url, statements[name]))
    failed = {key: sum(m.errors for m in ms) for key, ms in turns.items()}
    if any(failed.values()):
        raise RuntimeError(f"errors: {failed}")
    best = {key: max(ms, key=lambda m: m.rate) for key, ms in turns.items()}
    spread = {
        key: f"{min(m.rate for m in ms):.0f}-{max(m.rate for m in ms):.0f}"
        for key, ms in turns.items()
    }
    floor = best["floor"]
    print(
        f"{'HTTP floor (GET /ui, constant)':30} {floor.rate:8.0f} req/s "
        f"mean {floor.mean_ms:6.2f} ms (turns {spread['floor']})"
    )
    for name in paths:
        api, plain = best[f"{name} API"], best[f"{name} SQL"]
        print(
            f"{name:30} {api.rate:8.0f} req/s mean {api.mean_ms:6.2f} ms | plain SQL "
            f"{plain.rate:8.0f} q/s mean {plain.mean_ms:6.2f} ms | "
            f"API/SQL {api.rate / plain.rate:.2f} | API/floor {api.rate / floor.rate:.2f} "
            f"(turns: API {spread[f'{name} API']}, SQL {spread[f'{name} SQL']})"
        )


def wait_for_api(port: int, process: subprocess.Popen[bytes]) -> None:
    # Generous: uvicorn's workers import the app side by side, slowly on a busy machine.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API process exited")
        try:
            httpx.get(f"http://127.0.0.1:{port}{FLOOR}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the API did not answer within 120 s")


@contextmanager
def py_spy(output: str | None, pid: int) -> Iterator[None]:
    """Sample process `pid` with py-spy (`--gil`: where the CPU goes) into `output`
    (raw stacks) while the block runs; nothing when `output` is None."""
    if output is None:
        yield
        return
    spy = subprocess.Popen(
        [PY_SPY, "record", "--gil", "-f", "raw", "-o", output, "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # writes the profile
        spy.wait(30)


@contextmanager
def api_process(
    database_url: str, es: str, rs: str, *, workers: int = 1, spy: str | None = None, **env: str
) -> Iterator[int]:
    """A `dspyops api` process on those schemas (no token), answering on the port it
    yields; stopped when the block ends. `spy`: py-spy records it (all its workers) there."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DSPYOPS_EVENT_STORE_SCHEMA": es,
        "DSPYOPS_READ_MODEL_SCHEMA": rs,
        **env,
    }
    environment.pop("DSPYOPS_API_TOKEN", None)
    command = [sys.executable, "-m", "dspyops.cli.main", "api", "--port", str(port)]
    command += ["--workers", str(workers)]
    if spy:
        command = [
            PY_SPY,
            "record",
            "--gil",
            "--subprocesses",
            "-f",
            "raw",
            "-o",
            spy,
            "--",
            *command,
        ]
    api = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_api(port, api)
        yield port
    finally:
        # SIGINT: py-spy writes its profile and stops the API; uvicorn stops on it too.
        api.send_signal(signal.SIGINT)
        try:
            api.wait(30)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait(5)


def catch_up(database_url: str, es: str, rs: str, spy: str | None) -> None:
    events, raw, decoded = read_rate(database_url, es)
    projector = Projector(database_url, event_store_schema=es, read_schema=rs)
    with py_spy(spy, os.getpid()):
        started = time.perf_counter()
        applied = projector.catch_up()
        rate = applied / (time.perf_counter() - started)
    projector.close()
    print(
        f"event store: {events} events; raw read {raw:,.0f} ev/s, read+decode "
        f"{decoded:,.0f} ev/s; projection catch-up {rate:,.0f} ev/s "
        f"(catch-up/raw read {rate / raw:.2f}, catch-up/read+decode {rate / decoded:.2f})"
    )
    if spy:
        print(f"where catch-up's time goes (py-spy --gil):\n{summarize_py_spy(spy)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each HTTP/SQL measure")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--client",
        choices=("native", "python"),
        default="native" if native_available() else "python",
        help="native: wrk and pgbench (the default when installed); python: client processes",
    )
    parser.add_argument("--py-spy", metavar="FILE", help="record catch-up and the API into FILE.*")
    parser.add_argument(
        "--catch-up-only", action="store_true", help="measure projection catch-up, not the API"
    )
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
        catch_up(database_url, es, rs, args.py_spy and f"{args.py_spy}.catchup")
        if args.catch_up_only:
            return

        load = Load(args.client, CONCURRENCY, args.seconds)
        api_spy = args.py_spy and f"{args.py_spy}.api"
        settings = {
            "DSPYOPS_API_POOL_SIZE": str(CONCURRENCY),
        }
        with api_process(
            database_url, es, rs, workers=args.api_workers, spy=api_spy, **settings
        ) as port:
            clients = "wrk and pgbench" if args.client == "native" else "Python client processes"
            print(
                f"HTTP: {args.api_workers} uvicorn worker(s); {CONCURRENCY} connections from "
                f"{clients} ({load.processes} threads or processes), {args.rounds} turns of "
                f"{args.seconds:g} s each, interleaved; best turn shown"
            )
            http_vs_sql(database_url, rs, port, load, args.rounds)
        if api_spy:
            print(f"where the API's time goes (py-spy --gil):\n{summarize_py_spy(api_spy)}")


if __name__ == "__main__":
    main()
