"""Every Prometheus metric dspyops exposes, in one place (prometheus-client).

The worker and the projector serve theirs on ports of their own (settings
``worker_metrics_port``, ``projector_metrics_port``; 0 turns it off), the API at
``/metrics``. Names follow ``dspyops_<thing>_<unit>``; labels are bounded (program id,
command type, model, status: never an execution id). With ``PROMETHEUS_MULTIPROC_DIR``
set, prometheus-client keeps the values in files there, so several processes behind one
endpoint (API workers) add up (``serve``, ``exposition``).
``examples/observability/`` holds a scrape config and a Grafana dashboard built on them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dspyops.events.codec import UndecodableCode

log = logging.getLogger(__name__)

# One registry per kind of process, so each serves its own metrics and no other's (plus
# its process's CPU and memory).
WORKER = CollectorRegistry()
PROJECTOR = CollectorRegistry()
API = CollectorRegistry()
for _registry in (WORKER, PROJECTOR, API):
    ProcessCollector(registry=_registry)

# Latency buckets from a cached answer to a slow multi-step program.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# --- worker -----------------------------------------------------------------------------

COMMANDS = Counter(
    "dspyops_commands_total",
    "Commands handled, by type and the result published.",
    ["command_type", "result"],
    registry=WORKER,
)
COMMAND_SECONDS = Histogram(
    "dspyops_command_duration_seconds",
    "From a command record consumed to its results ready to publish.",
    ["command_type"],
    buckets=SECONDS,
    registry=WORKER,
)
EXECUTIONS = Counter(
    "dspyops_executions_total",
    "Executions ended, by program and status.",
    ["program_id", "status"],
    registry=WORKER,
)
EXECUTION_SECONDS = Histogram(
    "dspyops_execution_duration_seconds",
    "The program's run of an execution (its LM calls included).",
    ["program_id"],
    buckets=SECONDS,
    registry=WORKER,
)
EXECUTIONS_IN_FLIGHT = Gauge(
    "dspyops_executions_in_flight",
    "Executions running in this worker.",
    multiprocess_mode="livesum",
    registry=WORKER,
)
LM_CALL_SECONDS = Histogram(
    "dspyops_lm_call_duration_seconds",
    "One LM call, by model.",
    ["model"],
    buckets=SECONDS,
    registry=WORKER,
)
LM_TOKENS = Counter(
    "dspyops_lm_tokens_total",
    "Tokens billed, by program and kind (prompt, completion).",
    ["program_id", "kind"],
    registry=WORKER,
)
COST = Counter(
    "dspyops_cost_usd_total",
    "US dollars of the executions with a known price, by program.",
    ["program_id"],
    registry=WORKER,
)
UNPRICED = Counter(
    "dspyops_unpriced_executions_total",
    "Executions whose model has no known price, by program.",
    ["program_id"],
    registry=WORKER,
)
CONSUMER_LAG = Gauge(
    "dspyops_consumer_lag_messages",
    "Command records not yet committed, per topic and partition assigned to this worker.",
    ["topic", "partition"],
    multiprocess_mode="max",
    registry=WORKER,
)
DEAD_LETTERS = Counter(
    "dspyops_dead_letters_total",
    "Records sent to the dead-letter topic, by reason.",
    ["reason"],
    registry=WORKER,
)
# Every reason served at 0 from the start: a series born at 1 hides its first dead letter
# from increase() and rate(), and the first is the one to see.
for _reason in get_args(UndecodableCode):
    DEAD_LETTERS.labels(_reason)
RELAY_LAG = Gauge(
    "dspyops_relay_lag_events",
    "Stored events the outbox relay has not published yet.",
    multiprocess_mode="max",
    registry=WORKER,
)
RUNS_ACTIVE = Gauge(
    "dspyops_runs_active",
    "Optimization and evaluation runs in progress in this worker, by kind.",
    ["kind"],
    multiprocess_mode="livesum",
    registry=WORKER,
)

RUN_PROGRESS = Gauge(
    "dspyops_optimization_progress_ratio",
    "Steps done / steps planned of the optimization last reported, per program "
    "(1 once completed; it keeps its last value after a failure).",
    ["program_id"],
    multiprocess_mode="livemax",
    registry=WORKER,
)

# --- projector --------------------------------------------------------------------------

PROJECTED = Counter(
    "dspyops_projector_events_total", "Events applied to the read models.", registry=PROJECTOR
)
PROJECTOR_LAG = Gauge(
    "dspyops_projector_lag_events",
    "Stored events not yet applied to the read models.",
    multiprocess_mode="max",
    registry=PROJECTOR,
)
PROJECTOR_BATCH_SECONDS = Histogram(
    "dspyops_projector_batch_duration_seconds",
    "One batch of events applied, in one transaction.",
    buckets=SECONDS,
    registry=PROJECTOR,
)

# --- API --------------------------------------------------------------------------------

API_REQUESTS = Counter(
    "dspyops_api_requests_total",
    "API requests by method, route template and status.",
    ["method", "route", "status"],
    registry=API,
)
API_REQUEST_SECONDS = Histogram(
    "dspyops_api_request_duration_seconds",
    "API request latency by method and route template.",
    ["method", "route"],
    buckets=SECONDS,
    registry=API,
)


def serve(port: int, host: str, process: str, own: CollectorRegistry) -> bool:
    """Serve ``own`` metrics at http://host:port/metrics; False when it cannot."""
    if port == 0:
        return False
    try:
        start_http_server(port, addr=host, registry=registry(own))
    except OSError as exc:
        # Another process holds the port (several workers on one machine): the work
        # goes on without this endpoint rather than not at all.
        log.warning("%s metrics not served on %s:%d: %s", process, host, port, exc)
        return False
    log.info("%s metrics on http://%s:%d/metrics", process, host, port)
    return True


def multiprocess_mode() -> bool:
    """Values kept in files, added up over processes (where a series cannot be removed)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def registry(own: CollectorRegistry) -> CollectorRegistry:
    """The registry to expose: ``own``, or every process's values of ``own``'s metrics in
    multi-process mode."""
    if not multiprocess_mode():
        return own
    collected = CollectorRegistry()
    collected.register(_OnlyOwn(own, MultiProcessCollector(None)))
    return collected


class _OnlyOwn(Collector):
    """The families of ``own`` among every process's: each process defines every metric of
    this module, so its files hold the other kinds' too (at 0), which are not its to serve."""

    def __init__(self, own: CollectorRegistry, every: MultiProcessCollector) -> None:
        self._names = {family.name for family in own.collect()}
        self._every = every

    def collect(self) -> Iterable[Metric]:
        return [family for family in self._every.collect() if family.name in self._names]


def exposition(own: CollectorRegistry) -> bytes:
    """``own`` metrics (every process's in multi-process mode), as text."""
    return generate_latest(registry(own))
