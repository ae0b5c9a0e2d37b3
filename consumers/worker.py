"""The composition root of `dspyops worker`: event store, LM profiles, agents, outbox relay."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import faust
import psycopg

from dspyops.aggregates.application import DspyOps
from dspyops.aggregates.persistence import eventsourcing_env
from dspyops.consumers.faust_app import Publisher, add_command_agent, create_app
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.optimizations import RunJobs
from dspyops.consumers.processing import Processor
from dspyops.consumers.relay import OutboxRelay, PositionStore
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from dspyops.runtime.executor import configure_dspy_for_workers
from dspyops.runtime.optimizers import validate_optimization
from dspyops.runtime.profiles import ProfileRegistry
from dspyops.runtime.scoring import validate_metric
from dspyops.settings import Settings

log = logging.getLogger(__name__)

# Matches eventsourcing's PostgreSQL pool (POSTGRES_POOL_SIZE + max overflow): more
# threads than connections would only queue inside the pool.
_STORE_THREADS = 10
# Optimizations and evaluations running at once per worker, each in its own thread; the
# agent holds a command's offset until its run ends, so this also bounds redeliveries.
OPTIMIZATION_CONCURRENCY = 4


def ensure_event_store_schema(settings: Settings) -> None:
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.event_store_schema}"')


def open_store(settings: Settings) -> DspyOps:
    ensure_event_store_schema(settings)
    env = eventsourcing_env(settings.effective_database_url, schema=settings.event_store_schema)
    env["POSTGRES_POOL_SIZE"] = str(_STORE_THREADS)
    # Optimizer configs and metric names are checked when planned: bad ones are rejected
    # (evaluations have no config, only a metric name).
    return DspyOps(
        env=env,
        validate_config=validate_optimization,
        validate_metric=lambda metric: validate_metric(metric, {}),
    )


async def prepare_topics(settings: Settings) -> None:
    """Topics exist, all with one partition count, before any agent subscribes."""
    topics = Topics(settings.topic_prefix)
    await ensure_topics(
        settings.bootstrap_servers, topics.all, partitions=settings.topic_partitions
    )


def build_worker_app(
    settings: Settings, *, profiles: ProfileRegistry | None = None, relay: bool = True
) -> faust.App:
    """The faust app with its agents; `profiles` replaces the configured LM profiles (tests)."""
    topics = Topics(settings.topic_prefix)
    configure_dspy_for_workers()
    store = open_store(settings)
    app = create_app(settings)
    lm_profiles = profiles or ProfileRegistry.from_settings(settings.lm_profiles)
    publisher = Publisher(app)
    store_executor = ThreadPoolExecutor(_STORE_THREADS, thread_name_prefix="store")
    runs = RunJobs(
        app=store,
        profiles=lm_profiles,
        topics=topics,
        publish=publisher.publish,
        pool=ThreadPoolExecutor(OPTIMIZATION_CONCURRENCY, thread_name_prefix="optimize"),
        store_executor=store_executor,
    )
    processor = Processor(
        app=store,
        topics=topics,
        profiles=lm_profiles,
        modules=ModuleCache(),
        store_executor=store_executor,
        execution_timeout_s=settings.execution_timeout_s,
        runs=runs,
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
    if relay:
        outbox = OutboxRelay(
            store,
            PositionStore(settings.effective_database_url, settings.event_store_schema),
            topics,
            publisher.publish,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
        )

        async def run_relay() -> None:
            await outbox.run()

        app.task(run_relay)
    return app


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    # One loop for the topic check and for faust, so nothing is bound to a closed loop.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare_topics(settings))
    app = build_worker_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, loop=loop)
    worker.execute_from_commandline()
