"""`dspyops projector` and `dspyops projections rebuild|status`: the read side's upkeep."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

import psycopg
import typer

from dspyops.cli.console import fail, out, print_json
from dspyops.cli.log_options import LogFormatOpt, LogLevelOpt, configure
from dspyops.projections.lag import read_lag
from dspyops.projections.rebuild import rebuild as rebuild_read_models
from dspyops.projections.run import NotStarted, run_projector, stop_on_signals
from dspyops.settings import Settings, get_settings

app = typer.Typer(help="Rebuild and inspect the read models (PostgreSQL projections).")

log = logging.getLogger("dspyops.projector")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def projector(log_level: LogLevelOpt = "info", log_format: LogFormatOpt = "console") -> None:
    """Apply stored events to the read models until SIGTERM/SIGINT; each exactly once."""
    settings = get_settings()
    configure(log_format, log_level)
    stop = stop_on_signals()
    log.info("projector: %s -> %s", settings.event_store_schema, settings.read_model_schema)
    try:
        run_projector(settings, stop, report=_logged)
    except NotStarted as exc:
        fail(str(exc), exc.hint)


def _logged(line: str) -> None:
    """The projector's report lines as log lines: an outage is a warning."""
    (log.warning if "unavailable" in line else log.info)(line)


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
