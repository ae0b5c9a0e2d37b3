"""Console benchmark: a program with 100,000 executions opens in under 1 s (issue 14).

    .venv/bin/python -m bench.bench_console [--executions 100000] [--repeats 20]

Seeds a read schema with `read_story` (projected as usual), then copies `--executions`
more execution rows of program `qa` straight into the read tables with COPY (not
through Kafka: the projector is not what this measures), spread over 30 days, three
versions, every 7th failed. A real `dspyops api` process serves them; each page is
fetched `--repeats` times one at a time (after two warm-ups) and its median and p95
in ms printed against the 1,000 ms target, with the ratio to an HTTP floor measured in
the same run on the same server: `GET /ui`, a constant redirect that touches no table.

Uses throwaway schemas in DATABASE_URL's database and drops them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from psycopg import sql

from bench.bench_read_side import api_process
from dspyops.api.ui.programs import RECENT
from dspyops.bootstrap import open_store
from dspyops.projections.projector import Projector
from dspyops.projections.read_schema import EXECUTIONS
from dspyops.settings import get_settings
from tests.support.read_story import schemas, seed_story

TARGET_MS = 1000.0
# Above every position the event store gives the story's rows.
FIRST_POSITION = 10_000_000
COLUMNS = (
    "id",
    "execution_id",
    "program_id",
    "version",
    "status",
    "inputs",
    "outputs",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "offline",
    "error_code",
    "error_message",
    "command_id",
    "correlation_id",
    "actor",
    "requested_at",
    "completed_at",
    "position",
    "cost_usd",
)


def execution_rows(count: int, now: datetime) -> Iterator[tuple[object, ...]]:
    """`count` finished executions of qa over the 30 days before `now`, oldest first."""
    span = timedelta(days=30)
    for n in range(count):
        requested = now - span + span * (n / count)
        failed = n % 7 == 6
        latency = float(20 + (n * 37) % 900)
        yield (
            uuid.uuid4(),
            f"bench-x{n}",
            "qa",
            1 + n % 3,
            "failed" if failed else "succeeded",
            json.dumps({"question": f"q{n}", "context": "c"}),
            None if failed else json.dumps({"answer": "a", "confidence": 0.5}),
            latency,
            None if failed else 10 + n % 50,
            None if failed else 5,
            None if failed else 15 + n % 50,
            True,
            "lm_error" if failed else None,
            "boom" if failed else None,
            f"cmd-{n}",
            f"corr-{n}",
            f"user{n % 5}",
            requested,
            requested + timedelta(milliseconds=latency),
            FIRST_POSITION + n,
            None if failed else 0.0015,
        )


def seed_executions(database_url: str, rs: str, count: int) -> None:
    table = sql.SQL("{}.{}").format(sql.Identifier(rs), sql.Identifier(EXECUTIONS.name))
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table, sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(copy) as writer:
            for row in execution_rows(count, datetime.now(UTC)):
                writer.write_row(row)
        cur.execute(sql.SQL("ANALYZE {}").format(table))


def timed(client: httpx.Client, path: str, repeats: int) -> list[float]:
    """Milliseconds per GET of `path`, after two warm-ups; each answer checked."""
    times = []
    for n in range(repeats + 2):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code not in (200, 307):
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")
        if n >= 2:
            times.append(elapsed)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[18]


def measure(port: int, repeats: int, executions: int) -> None:
    middle = FIRST_POSITION + executions // 2
    pages = {
        "program page": "/ui/programs/qa",
        "program page, by hour": "/ui/programs/qa?bucket=hour",
        # The first page's `Older` link: the position of the last execution it shows.
        "executions, 2nd page": f"/ui/programs/qa?cursor={FIRST_POSITION + executions - RECENT}",
        "executions, middle page": f"/ui/programs/qa?cursor={middle}",
        "executions, oldest page": f"/ui/programs/qa?cursor={FIRST_POSITION + RECENT}",
        "one execution": f"/ui/executions/bench-x{executions // 2}",
    }
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        first = client.get("/ui/programs/qa").text
        older = f"cursor={FIRST_POSITION + executions - RECENT}"
        if older not in first:
            raise RuntimeError(f"the program page's Older link is not at {older}")
        floor = timed(client, "/ui", repeats)
        floor_median = statistics.median(floor)
        print(
            f"{'HTTP floor (GET /ui, constant)':34} median {floor_median:7.1f} ms  "
            f"p95 {p95(floor):7.1f} ms"
        )
        for name, path in pages.items():
            times = timed(client, path, repeats)
            median = statistics.median(times)
            verdict = "under" if p95(times) < TARGET_MS else "OVER"
            print(
                f"{name:34} median {median:7.1f} ms  p95 {p95(times):7.1f} ms  "
                f"({verdict} the {TARGET_MS:,.0f} ms target; {median / floor_median:5.1f}x floor)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    database_url = get_settings().effective_database_url
    suffix = uuid.uuid4().hex[:8]
    es, rs = f"bench_es_{suffix}", f"bench_rd_{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        try:
            seed_story(store)
        finally:
            store.close()
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        try:
            projector.catch_up()
        finally:
            projector.close()
        started = time.perf_counter()
        seed_executions(database_url, rs, args.executions)
        print(
            f"copied {args.executions:,} executions of program qa into the read tables "
            f"in {time.perf_counter() - started:.1f} s"
        )
        with api_process(database_url, es, rs) as port:
            print(
                f"one `dspyops api` process, one client, {args.repeats} GETs per page; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
            measure(port, args.repeats, args.executions)
            print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
