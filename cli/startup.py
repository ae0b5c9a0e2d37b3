"""Bringing the local services up one by one, with a progress line for each until it is ready."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError as KafkaClientError
from psycopg import sql
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from dspyops.cli.infra.kafka import KafkaError
from dspyops.cli.infra.postgres import PostgresError
from dspyops.cli.readiness import api_health, projection_lag, worker_answers
from dspyops.cli.services import Child, LocalServices, port_taken
from dspyops.client.security import KafkaSecurity
from dspyops.events.topics import Topics

WORKER_READY_S = 120.0
API_READY_S = 60.0
PROJECTOR_READY_S = 120.0


class StartupError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM end the command through the same cleanup as Ctrl-C.

    SIGINT is set explicitly: a shell starting us in the background hands it down ignored.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A second Ctrl-C must not cut the cleanup short and leave children behind."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def bring_up(services: LocalServices, console: Console, *, fresh: bool = False) -> None:
    """Infra (unless running), then worker, projector and API, each waited for."""
    s = services.settings
    if port_taken(s.api_host, s.api_port):
        raise StartupError(
            f"port {s.api_port} on {s.api_host} is taken (another API or `dspyops dev`?)",
            "stop it, or set DSPYOPS_API_PORT to a free port",
        )
    progress = Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("[bold]{task.description:<10}[/]"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        _step(progress, "kafka", lambda: _kafka(services))
        _step(progress, "postgres", lambda: _postgres(services))
        if fresh:
            _step(progress, "fresh", lambda: _wipe(services))
        worker = services.spawn("worker", "worker", "--loglevel", "warn")
        api = services.spawn("api", "api")
        _step(progress, "worker", lambda: _await_worker(services, worker))
        # After the worker: the projector reads the event store the worker creates.
        projector = services.spawn("projector", "projector")
        _step(progress, "api", lambda: _await_api(services, api))
        _step(progress, "projector", lambda: _await_projector(services, projector))


def _step(progress: Progress, name: str, run: Callable[[], str]) -> None:
    task: TaskID = progress.add_task(name, total=1, status="starting…")
    progress.update(task, completed=1, status=run())


def _kafka(services: LocalServices) -> str:
    try:
        started = services.start_kafka()
    except KafkaError as exc:
        raise StartupError(
            str(exc), "check Java 17+ and Maven, or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    servers = services.settings.bootstrap_servers
    if not services.stack.kafka_answers():
        raise StartupError(
            f"Kafka at {servers} does not answer",
            "run `dspyops infra up`, or check KAFKA_BOOTSTRAP_SERVERS",
        )
    return f"{'started' if started else 'running'} at {servers}"


def _postgres(services: LocalServices) -> str:
    try:
        started = services.start_postgres()
    except PostgresError as exc:
        raise StartupError(str(exc), "or set DATABASE_URL to an existing server") from exc
    if not services.stack.postgres_answers():
        raise StartupError("PostgreSQL does not accept connections", "check DATABASE_URL")
    return "started" if started else "running"


def _wipe(services: LocalServices) -> str:
    s = services.settings
    try:
        topics = asyncio.run(
            _delete_topics(s.bootstrap_servers, s.kafka_security, Topics(s.topic_prefix))
        )
        with psycopg.connect(s.effective_database_url, autocommit=True) as conn:
            for schema in (s.event_store_schema, s.read_model_schema):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
    except (KafkaClientError, psycopg.Error) as exc:
        raise StartupError(f"--fresh could not clear the old data: {exc}") from exc
    # faust keeps offsets and table state beside the worker (a folder per worker process,
    # cli/worker_processes.py); stale ones must go too.
    for datadir in services.run_dir.glob(f"{glob.escape(s.topic_prefix)}worker-data*"):
        shutil.rmtree(datadir, ignore_errors=True)
    return f"deleted {topics} topics, schemas {s.event_store_schema} and {s.read_model_schema}"


async def _delete_topics(servers: str, security: KafkaSecurity, topics: Topics) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, **security.aiokafka_kwargs())
    await admin.start()
    try:
        doomed = [t for t in topics.all if t in set(await admin.list_topics())]
        if doomed:
            await admin.delete_topics(doomed)
        with contextlib.suppress(Exception):  # no such group yet is fine
            await admin.delete_consumer_groups([f"{topics.prefix}worker"])
        # Deletion is asynchronous; the worker must not find half-deleted topics.
        deadline = time.monotonic() + 30
        while set(doomed) & set(await admin.list_topics()):
            if time.monotonic() > deadline:
                raise StartupError("Kafka did not delete the topics within 30s")
            await asyncio.sleep(0.3)
        return len(doomed)
    finally:
        await admin.close()


def _died(child: Child) -> StartupError:
    return StartupError(
        f"{child.name} exited with code {child.proc.returncode if child.proc else '?'}:\n"
        f"{child.log_tail()}",
        f"its whole log is {child.log_path}",
    )


def _await_worker(services: LocalServices, worker: Child) -> str:
    if worker_answers(services.settings, timeout_s=WORKER_READY_S, alive=worker.alive):
        return f"answers commands (pid {worker.pid})"
    if not worker.alive():
        raise _died(worker)
    raise StartupError(
        f"the worker did not answer within {WORKER_READY_S:g}s", f"see {worker.log_path}"
    )


def _await_api(services: LocalServices, api: Child) -> str:
    deadline = time.monotonic() + API_READY_S
    while api_health(services.settings) is None:
        if not api.alive():
            raise _died(api)
        if time.monotonic() > deadline:
            raise StartupError(f"the API did not answer within {API_READY_S:g}s")
        time.sleep(0.3)
    return f"healthy (pid {api.pid})"


def _await_projector(services: LocalServices, projector: Child) -> str:
    deadline = time.monotonic() + PROJECTOR_READY_S
    while (lag := projection_lag(services.settings)) != 0:
        if not projector.alive():
            raise _died(projector)
        if time.monotonic() > deadline:
            raise StartupError(
                f"the read models are still {lag} events behind after {PROJECTOR_READY_S:g}s",
                f"see {projector.log_path}",
            )
        time.sleep(0.3)
    return f"caught up (pid {projector.pid})"
