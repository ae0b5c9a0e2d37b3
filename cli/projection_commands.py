"""`dspyops projector` and `dspyops projections rebuild|status`: the read side's upkeep."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Annotated, Any

import psycopg
import typer
from eventsourcing.persistence import PersistenceError

from dspyops.cli.console import err, fail, out, print_json
from dspyops.projections.lag import read_lag
from dspyops.projections.projector import Projector
from dspyops.projections.rebuild import rebuild as rebuild_read_models
from dspyops.projections.upgrade import OutdatedReadSchema
from dspyops.settings import Settings, get_settings

app = typer.Typer(help="Rebuild and inspect the read models (PostgreSQL projections).")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
# The projector reports its lag this often, so a stalled read side shows in its log.
REPORT_EVERY_S = 10.0
RETRY_S = 1.0


def _new_projector(settings: Settings) -> Projector:
    return Projector(
        settings.effective_database_url,
        event_store_schema=settings.event_store_schema,
        read_schema=settings.read_model_schema,
        batch_size=settings.projection_batch_size,
    )


def _projector(settings: Settings) -> Projector:
    try:
        runner = _new_projector(settings)
    except psycopg.Error as exc:
        fail(f"PostgreSQL does not answer: {exc}", "run `dspyops infra up` or set DATABASE_URL")
    except OutdatedReadSchema as exc:
        fail(str(exc))
    for line in runner.upgrades:
        err.print(f"projector: {line}")
    return runner


def projector() -> None:
    """Apply stored events to the read models until SIGTERM/SIGINT; each exactly once."""
    settings = get_settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    out.print(f"projector: {settings.event_store_schema} -> {settings.read_model_schema}")
    runner = _projector(settings)
    while not stop.is_set():
        try:
            _project(runner, settings, stop)
        except (psycopg.OperationalError, PersistenceError) as exc:
            # The last batch rolled back with the connection: reconnect and resume from
            # the committed position, rather than leave the read side to a supervisor.
            err.print(f"projector: database unavailable ({exc}); retrying in {RETRY_S} s")
            runner.close_quietly()
            stop.wait(RETRY_S)
            if not stop.is_set():
                runner = _reconnect(settings, stop)
    runner.close_quietly()


def _project(runner: Projector, settings: Settings, stop: threading.Event) -> None:
    while not stop.is_set():
        deadline = time.monotonic() + REPORT_EVERY_S
        while not stop.is_set() and time.monotonic() < deadline:
            if runner.run_batch() == 0:
                stop.wait(settings.projection_poll_interval_s)
        err.print(f"projector lag: {runner.lag().as_dict()}")


def _reconnect(settings: Settings, stop: threading.Event) -> Projector:
    while True:
        try:
            return _new_projector(settings)
        except (psycopg.OperationalError, PersistenceError) as exc:
            err.print(f"projector: still unavailable ({exc})")
            if stop.wait(RETRY_S):
                raise typer.Exit(0) from exc


@app.command()
def rebuild(json_out: JsonOpt = False) -> None:
    """Rebuild every read table from all stored events, then swap it in atomically."""
    settings = get_settings()
    started = time.monotonic()
    try:
        count = rebuild_read_models(
            settings.effective_database_url,
            event_store_schema=settings.event_store_schema,
            read_schema=settings.read_model_schema,
            batch_size=settings.projection_batch_size,
        )
    except psycopg.Error as exc:
        fail(f"rebuild failed: {exc}", "check DATABASE_URL and that the event store exists")
    report = {"events": count, "seconds": round(time.monotonic() - started, 3)}
    _show(report, json_out)


@app.command()
def status(json_out: JsonOpt = False) -> None:
    """Show the read models' position, the event store's head and the lag between them."""
    settings = get_settings()
    try:
        report = asyncio.run(_lag(settings))
    except psycopg.Error as exc:
        fail(f"PostgreSQL does not answer: {exc}", "run `dspyops infra up` or set DATABASE_URL")
    _show(report, json_out)


async def _lag(settings: Settings) -> dict[str, Any]:
    # Read-only: no projector, no lock, no tables created just to look.
    async with await psycopg.AsyncConnection.connect(
        settings.effective_database_url, autocommit=True
    ) as conn:
        return await read_lag(conn, settings.event_store_schema, settings.read_model_schema)


def _show(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(report)
    else:
        for key, value in report.items():
            out.print(f"{key}: {value}")
