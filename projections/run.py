"""The projector as a service: apply events until told to stop, reconnect after outages.

`run_projector` is what `dspyops projector` runs: batches until `stop` is set (by
SIGTERM/SIGINT through `stop_on_signals`), its lag reported every REPORT_EVERY_S, and a
lost database waited out and reconnected to, resuming at the committed position (the
batch in flight rolled back with its connection). Failing to start is `NotStarted`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable

import psycopg
from eventsourcing.persistence import PersistenceError
from opentelemetry.trace import SpanKind

from dspyops import metrics
from dspyops.projections.projector import Projector
from dspyops.projections.upgrade import OutdatedReadSchema
from dspyops.settings import Settings
from dspyops.tracing import Tracing, links_to

# The projector reports its lag this often, so a stalled read side shows in its log.
REPORT_EVERY_S = 10.0
RETRY_S = 1.0
# Errors that mean the database went away: reconnect rather than leave it to a supervisor.
OUTAGES = (psycopg.OperationalError, PersistenceError)

Report = Callable[[str], None]


class NotStarted(Exception):
    """The projector could not open the event store or its read schema."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def stop_on_signals(*signums: int) -> threading.Event:
    """An event set by SIGTERM and SIGINT (or `signums`); call from the main thread."""
    stop = threading.Event()
    for signum in signums or (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_projector(settings: Settings, stop: threading.Event, report: Report = _stderr) -> None:
    """Apply stored events to the read models until `stop` is set; each exactly once."""
    metrics.serve(
        settings.projector_metrics_port, settings.metrics_host, "projector", metrics.PROJECTOR
    )
    # A span per batch applied, linked to the traces of the commands that recorded them.
    tracing = Tracing.from_environment("dspyops-projector")
    try:
        runner = _open(settings, report)
    except psycopg.Error as exc:
        raise NotStarted(
            f"PostgreSQL does not answer: {exc}", "run `dspyops infra up` or set DATABASE_URL"
        ) from exc
    except OutdatedReadSchema as exc:
        raise NotStarted(str(exc)) from exc
    while not stop.is_set():
        try:
            _project(runner, settings, stop, report, tracing)
        except OUTAGES as exc:
            report(f"projector: database unavailable ({exc}); retrying in {RETRY_S} s")
            runner.close_quietly()
            stop.wait(RETRY_S)
            if stop.is_set():
                return
            reopened = _reconnect(settings, stop, report)
            if reopened is None:
                return
            runner = reopened
    runner.close_quietly()


def new_projector(settings: Settings) -> Projector:
    return Projector(
        settings.effective_database_url,
        event_store_schema=settings.event_store_schema,
        read_schema=settings.read_model_schema,
        batch_size=settings.projection_batch_size,
    )


def _open(settings: Settings, report: Report) -> Projector:
    runner = new_projector(settings)
    for line in runner.upgrades:
        report(f"projector: {line}")
    return runner


def _project(
    runner: Projector,
    settings: Settings,
    stop: threading.Event,
    report: Report,
    tracing: Tracing,
) -> None:
    while not stop.is_set():
        deadline = time.monotonic() + REPORT_EVERY_S
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            with tracing.continue_trace(
                None,
                "project batch",
                SpanKind.INTERNAL,
                {"dspyops.read_schema": runner.read_schema},
            ) as span:
                applied = runner.run_batch()
                span.dropped = applied == 0  # a poll that found nothing is no span
                span.attributes["dspyops.events"] = applied
                # Linked to the traces of the commands whose events it applied.
                span.links = links_to(runner.origins)
            if applied == 0:
                metrics.PROJECTOR_LAG.set(0)
                stop.wait(settings.projection_poll_interval_s)
                continue
            metrics.PROJECTOR_BATCH_SECONDS.observe(time.perf_counter() - started)
            metrics.PROJECTED.inc(applied)
            if applied >= settings.projection_batch_size:  # maybe more behind: ask
                metrics.PROJECTOR_LAG.set(runner.lag().events_behind)
        lag = runner.lag()
        metrics.PROJECTOR_LAG.set(lag.events_behind)
        report(f"projector lag: {lag.as_dict()}")


def _reconnect(settings: Settings, stop: threading.Event, report: Report) -> Projector | None:
    """A new projector once the database answers again; None if stopped meanwhile."""
    while True:
        try:
            return _open(settings, report)
        except OUTAGES as exc:
            report(f"projector: still unavailable ({exc})")
            if stop.wait(RETRY_S):
                return None
