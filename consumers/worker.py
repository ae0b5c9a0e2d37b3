"""The composition root of `dspyops worker`: event store, LM profiles, agents, outbox relay,
and the redaction of every secret the worker holds (results, events and log lines)."""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from dspyops import bootstrap, metrics
from dspyops.aggregates.app import EvaluationPlan, ExecutionPlan, GatePlan, OptimizationPlan
from dspyops.consumers.corpora import CorpusSearch
from dspyops.consumers.evaluations import EvaluationJobs
from dspyops.consumers.executions import ExecutionJobs
from dspyops.consumers.faust_app import Publisher, add_command_agent, create_app
from dspyops.consumers.gates import GateJobs
from dspyops.consumers.log_format import LogFormat, logging_config
from dspyops.consumers.log_redaction import install_log_redaction
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.processing import Processor
from dspyops.consumers.relay import Lease, OutboxRelay, PositionStore, relay_lock_key
from dspyops.consumers.relay_thread import RelayThread
from dspyops.consumers.result_outbox import OutboxDelivery, ResultOutbox, outbox_exists
from dspyops.consumers.result_relay import RelayIdentity, ResultRelay
from dspyops.consumers.runs import RunJobs
from dspyops.consumers.telemetry import Telemetry
from dspyops.consumers.topic_admin import Replication, ensure_topics
from dspyops.events.topics import Topics
from dspyops.runtime.executor import configure_dspy_for_workers
from dspyops.runtime.profiles import ProfileRegistry
from dspyops.runtime.redaction import Redactor
from dspyops.settings import Settings

log = logging.getLogger(__name__)

# Optimizations and evaluations running at once per worker, each in its own thread; the
# agent holds a command's offset until its run ends, so this also bounds redeliveries.
OPTIMIZATION_CONCURRENCY = 4


async def prepare_topics(settings: Settings) -> None:
    """Topics exist, all with one partition count, before any agent subscribes."""
    topics = Topics(settings.topic_prefix)
    await ensure_topics(
        settings.bootstrap_servers,
        topics.all,
        partitions=settings.topic_partitions,
        replication=Replication.of(settings),
        security=settings.kafka_security,
    )


# How often the worker reports its consumer lag (metrics.CONSUMER_LAG).
CONSUMER_LAG_EVERY_S = 2.0

# The collector's generation thresholds in a worker (CPython's default: 700, 10, 10).
# Executions in flight keep many young objects alive, and each full collection scans the
# whole heap, startup's included: in bench_pipeline's worker (gc callbacks, CPU time) the
# collector took 6 % of the worker's CPU in one run (470 collections); with
# `gc.freeze` and these thresholds, 0.9 % (34 collections).
GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc() -> None:
    """Call once the worker is built, before it runs: what was made at startup (DSPy,
    LiteLLM, pydantic schemas, the program caches' first entries) is moved out of the
    collector's sight for good, and young collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_worker_app(
    settings: Settings,
    *,
    profiles: ProfileRegistry | None = None,
    relay: bool = True,
    redactor: Redactor | None = None,
) -> faust.App:
    """The faust app with its agents; `profiles` replaces the configured LM profiles and
    `redactor` the one made from them (the log redaction's, in `run_worker`)."""
    topics = Topics(settings.topic_prefix)
    configure_dspy_for_workers()
    lm_profiles = profiles or bootstrap.lm_profiles(settings)
    redactor = redactor or Redactor.for_worker(settings, lm_profiles)
    store = bootstrap.open_worker_store(settings, lm_profiles)
    app = create_app(settings)
    telemetry = Telemetry.from_environment("dspyops-worker")
    store_executor = ThreadPoolExecutor(bootstrap.STORE_THREADS, thread_name_prefix="store")
    exactly_once = settings.results_exactly_once
    # Off, a relay still runs if the outbox exists: it publishes what was stored while
    # the option was on and then ends, so turning the option off loses no result.
    results_relay = results_relay_for(settings, topics, drain_only=not exactly_once)
    publisher = Publisher(
        app,
        telemetry,
        deliver=results_relay.delivery(store_executor) if exactly_once and results_relay else None,
    )
    corpora = CorpusSearch(store)
    executions = ExecutionJobs(
        app=store,
        profiles=lm_profiles,
        modules=ModuleCache(search=corpora.for_plan),
        store_executor=store_executor,
        execution_timeout_s=settings.execution_timeout_s,
        redactor=redactor,
        telemetry=telemetry,
        topics=topics,
        publish=publisher.publish,
    )
    # One pool for both kinds of run: together they hold at most this many threads.
    run_pool = ThreadPoolExecutor(OPTIMIZATION_CONCURRENCY, thread_name_prefix="run")
    runs = RunJobs(
        search=corpora.for_plan,
        app=store,
        profiles=lm_profiles,
        topics=topics,
        publish=publisher.publish,
        pool=run_pool,
        store_executor=store_executor,
        redactor=redactor,
        telemetry=telemetry,
    )
    evaluations = EvaluationJobs(
        search=corpora.for_plan,
        app=store,
        profiles=lm_profiles,
        pool=run_pool,
        store_executor=store_executor,
        redactor=redactor,
        telemetry=telemetry,
    )
    gates = GateJobs(app=store, evaluations=evaluations, store_executor=store_executor)
    processor = Processor(
        app=store,
        topics=topics,
        jobs={
            ExecutionPlan: executions.run,
            OptimizationPlan: runs.optimize,
            EvaluationPlan: evaluations.evaluate,
            GatePlan: gates.run,
        },
        store_executor=store_executor,
        telemetry=telemetry,
    )
    add_command_agent(app, topics.programs, processor.process, publisher, concurrency=1)
    add_command_agent(
        app,
        topics.executions,
        processor.process,
        publisher,
        concurrency=settings.execution_concurrency,
    )
    add_command_agent(
        app,
        topics.optimizations,
        processor.process,
        publisher,
        concurrency=OPTIMIZATION_CONCURRENCY,
    )

    lag = ConsumerLag()

    @app.timer(interval=CONSUMER_LAG_EVERY_S)
    async def consumer_lag() -> None:
        lag.record(app)

    if results_relay is not None:
        # Results reach Kafka only through it, so it runs whatever `relay` says.
        async def run_results_relay() -> None:
            await results_relay.thread.run()

        app.task(run_results_relay)
    if relay:
        outbox = OutboxRelay(
            store,
            PositionStore(settings.effective_database_url, settings.event_store_schema),
            topics,
            publisher.send,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
        )

        async def run_relay() -> None:
            await outbox.run()

        app.task(run_relay)
    return app


@dataclass(frozen=True)
class ResultsRelay:
    """The worker's side of exactly-once results: the outbox it writes, the relay that
    publishes it."""

    outbox: ResultOutbox
    thread: RelayThread

    def delivery(self, executor: Executor) -> OutboxDelivery:
        return OutboxDelivery(self.outbox, executor, self.thread.wake)


def results_relay_for(
    settings: Settings, topics: Topics, *, drain_only: bool = False
) -> ResultsRelay | None:
    """The outbox and its relay; `drain_only` (the option off): only if the outbox table
    exists, with a relay that ends once it has published everything stored."""
    schema = settings.event_store_schema
    url = settings.effective_database_url
    if drain_only and not outbox_exists(url, schema):
        return None
    outbox = ResultOutbox.connect(url, schema, max_size=bootstrap.STORE_THREADS)
    outbox.ensure_table()  # before any record is handled: every result is written there
    relay = ResultRelay(
        outbox,
        Lease(url, relay_lock_key(schema, "results")),
        RelayIdentity.of(settings.topic_prefix, schema, topics),
        bootstrap_servers=settings.bootstrap_servers,
        security=settings.kafka_security,
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
        retention=timedelta(seconds=settings.result_outbox_retention_s),
        until_drained=drain_only,
    )
    return ResultsRelay(outbox, RelayThread(relay))


def run_worker(
    settings: Settings, *, loglevel: str = "info", log_format: LogFormat = "console"
) -> None:
    profiles = bootstrap.lm_profiles(settings)
    # Before anything else logs: no log line of this process shows a secret it holds.
    redactor = Redactor.for_worker(settings, profiles)
    install_log_redaction(redactor)
    # One loop for the topic check and for faust, so nothing is bound to a closed loop.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare_topics(settings))
    app = build_worker_app(settings, profiles=profiles, redactor=redactor)
    metrics.serve(settings.worker_metrics_port, settings.metrics_host, "worker", metrics.WORKER)
    tune_gc()
    faust_worker(
        app, loop, loglevel=loglevel, logging_config=logging_config(log_format, loglevel)
    ).execute_from_commandline()


def faust_worker(app: faust.App, loop: asyncio.AbstractEventLoop, **options: Any) -> faust.Worker:
    """faust's worker without its terminal spinner: at a level of WARN or above the spinner
    sets the root logger to DEBUG (to spin on every record), and every debug line of
    aiokafka, faust and the rest was then made into a record and dropped, about 1 % of the
    worker's CPU in a profile."""
    worker = faust.Worker(app, quiet=True, loop=loop, **options)
    worker.spinner = None
    return worker


class ConsumerLag:
    """metrics.CONSUMER_LAG of this worker's partitions."""

    def __init__(self) -> None:
        self._shown: set[tuple[str, str]] = set()

    def record(self, app: faust.App) -> None:
        """Per assigned partition: its high watermark less the committed offset (the records
        not yet done). Partitions no longer assigned drop out; in prometheus-client's
        multi-process mode (`dspyops worker --processes N`), which cannot drop a series,
        they read 0 here, and the endpoint shows the largest value, their new owner's."""
        committed = app.monitor.tp_committed_offsets or {}
        lags: dict[tuple[str, str], int] = {}
        for tp in app.consumer.assignment():
            end = app.consumer.highwater(tp)
            done = committed.get(tp)
            if end is None or end < 0 or done is None:
                continue  # not fetched or not committed yet: unknown, not 0
            lags[(tp.topic, str(tp.partition))] = max(end - done, 0)
        for labels in self._shown - lags.keys():
            if metrics.multiprocess_mode():
                metrics.CONSUMER_LAG.labels(*labels).set(0)
            else:
                metrics.CONSUMER_LAG.remove(*labels)
        for labels, value in lags.items():
            metrics.CONSUMER_LAG.labels(*labels).set(value)
        self._shown = set(lags)
