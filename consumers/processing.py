"""From one command record to the messages it causes: no Kafka client here, only decisions.

The faust agents and the tests share this, so what a worker does with a record is tested
without a broker and exercised with one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from dspyops import metrics
from dspyops.aggregates.app import CommandContext, DspyOps, Outcome, Plan, handle
from dspyops.aggregates.app.budgets import Wait
from dspyops.aggregates.app.handlers import for_command, handle_many
from dspyops.aggregates.app.trace_context import carrying
from dspyops.consumers.batcher import Batcher
from dspyops.consumers.log_format import command_logging
from dspyops.consumers.records import Incoming, Outgoing
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry, traceparent_of, tracestate_of
from dspyops.consumers.transient import is_transient
from dspyops.events.codec import InvalidCommand, Undecodable, decode_command, decode_envelope
from dspyops.events.commands import ExecuteProgram
from dspyops.events.deadletter import deadletter_envelope
from dspyops.events.envelope import Envelope, result_envelope, result_id
from dspyops.events.results import CommandRejected, ErrorItem
from dspyops.events.topics import Topics, command_topic

log = logging.getLogger(__name__)

# Runs the work a plan describes (an execution, an optimization, an evaluation) to the
# command's one terminal outcome.
Job = Callable[[Envelope, Any, CommandContext], Awaitable[Outcome]]

# Pauses between plans of an execution waiting for its program's first cost (doubling).
BUDGET_WAIT_FIRST_S = 0.02
BUDGET_WAIT_MAX_S = 0.5


@dataclass
class Processor:
    """Decodes a command record, applies it through the command table, runs its plan."""

    app: DspyOps
    topics: Topics
    # Plan type -> the job that carries it out; a plan without a job is an internal error.
    jobs: Mapping[type[Plan], Job] = field(default_factory=dict)
    store_executor: Executor | None = None
    # Traces (off unless the OTEL_* variables ask): one per command.
    telemetry: Telemetry = field(default_factory=Telemetry)
    # Executions arriving together are planned in one store call (`handle_many`).
    _plans: Batcher[tuple[ExecuteProgram, CommandContext], Outcome | Plan] | None = field(
        default=None, init=False, repr=False
    )

    async def process(self, record: Incoming) -> list[Outgoing]:
        """The messages to publish for `record`. Raises only for transient outages."""
        try:
            envelope = decode_envelope(record.value)
        except Undecodable as exc:
            return [self._deadletter(record, exc)]
        with (
            command_logging(
                envelope.id,
                envelope.correlation_id,
                envelope.short_type,
                traceparent_of(envelope, record),
            ),
            self.telemetry.command(record, envelope),
        ):
            started = time.perf_counter()
            outgoing = await self._process_with_fallback(record, envelope)
            command_type = envelope.short_type
            metrics.COMMAND_SECONDS.labels(command_type).observe(time.perf_counter() - started)
            for message in outgoing:
                metrics.COMMANDS.labels(command_type, message.envelope.short_type).inc()
            if log.isEnabledFor(logging.INFO):
                log.info("handled: %s", ", ".join(o.envelope.short_type for o in outgoing))
            return outgoing

    async def _process_with_fallback(self, record: Incoming, envelope: Envelope) -> list[Outgoing]:
        try:
            return await self._process_envelope(record, envelope)
        except Exception as exc:
            if is_transient(exc):
                raise
            # A bug must not block the partition: the command still gets its one result.
            log.exception("internal error handling %s %s", envelope.type, envelope.id)
            error = ErrorItem(
                loc=[], msg=f"internal error: {type(exc).__name__}", type="internal_error"
            )
            return [
                self._reply(
                    envelope,
                    CommandRejected(command_type=envelope.short_type, errors=[error]),
                    envelope.subject,
                    record,
                )
            ]

    async def _process_envelope(self, record: Incoming, envelope: Envelope) -> list[Outgoing]:
        wrong_topic = self._wrong_topic(record, envelope)
        if wrong_topic is not None:
            return [self._reply(envelope, wrong_topic, envelope.subject, record)]
        try:
            command = decode_command(envelope)
        except InvalidCommand as exc:
            rejected = CommandRejected(command_type=envelope.short_type, errors=exc.errors)
            return [self._reply(envelope, rejected, envelope.subject, record)]
        ctx = for_command(
            command,
            CommandContext(
                command_id=envelope.id,
                correlation_id=envelope.correlation_id,
                actor=envelope.actor,
                source=envelope.source,
                command_type=envelope.short_type,
                # Inside the command's span: what its results carry on, its events too.
                traceparent=self.telemetry.traceparent(envelope, record),
                tracestate=tracestate_of(envelope, record),
            ),
        )
        with carrying(ctx):
            decided = await self._decide(envelope, command, ctx)
        return [self._outcome(envelope, decided, ctx.payload_digest, record)]

    async def _decide(self, envelope: Envelope, command: Any, ctx: CommandContext) -> Outcome:
        """The command's outcome: handled, then its plan's work run (if it has one)."""
        with self.telemetry.stage("handle"):
            decided = await self._handle(command, ctx)
        if not isinstance(decided, Plan):
            return decided
        kind = type(decided).__name__.removesuffix("Plan").lower()
        runs = metrics.RUNS_ACTIVE.labels(kind) if kind != "execution" else None
        if runs is not None:
            runs.inc()
        try:
            with self.telemetry.stage("run"):
                return await self.jobs[type(decided)](envelope, decided, ctx)
        finally:
            if runs is not None:
                runs.dec()

    async def _handle(self, command: Any, ctx: CommandContext) -> Outcome | Plan:
        """`handle` in a store thread; a budgeted program whose first execution is still
        running (`budgets.Wait`) is asked again after a pause that holds no thread."""
        pause = BUDGET_WAIT_FIRST_S
        while True:
            try:
                if isinstance(command, ExecuteProgram):
                    return await self._plan(command, ctx)
                return await in_store(self.store_executor, handle, self.app, command, ctx)
            except Wait:
                await asyncio.sleep(pause)
                pause = min(pause * 2, BUDGET_WAIT_MAX_S)

    async def _plan(self, command: ExecuteProgram, ctx: CommandContext) -> Outcome | Plan:
        if self._plans is None:
            self._plans = Batcher(self._plan_many)
        return await self._plans.submit((command, ctx))

    async def _plan_many(
        self, items: Sequence[tuple[ExecuteProgram, CommandContext]]
    ) -> list[Outcome | Plan | Exception]:
        # Each command's own trace context goes with the call; `handle` carries it.
        results: list[Outcome | Plan | Exception] = await in_store(
            self.store_executor, handle_many, self.app, items
        )
        return results

    def _wrong_topic(self, record: Incoming, envelope: Envelope) -> CommandRejected | None:
        try:
            expected = command_topic(self.topics, envelope.short_type, envelope.data)
        except KeyError:
            expected = record.topic  # the codec dead-letters unknown types; nothing to add
        if expected == record.topic:
            return None
        error = ErrorItem(
            loc=["type"],
            msg=f"{envelope.short_type} belongs on topic {expected}, not {record.topic}",
            type="wrong_topic",
        )
        return CommandRejected(command_type=envelope.short_type, errors=[error])

    def _outcome(
        self,
        command: Envelope,
        outcome: Outcome,
        digest: str | None = None,
        record: Incoming | None = None,
    ) -> Outgoing:
        # Result ids are derived from the command id, so a replay is recognisably the
        # same; a reused id's refusal is another message than the id's first outcome.
        refused = (
            {error.get("type") for error in outcome.data.get("errors", [])}
            if outcome.rejected
            else set()
        )
        if "id_reused" in refused:
            key = f"{outcome.result_type}:id_reused:{digest}"
        elif "rate_limited" in refused:
            # Not recorded, so the same id comes again: each refusal is a message of its
            # own, never mistaken (deduplicated by id) for the command's real outcome.
            key = f"{outcome.result_type}:rate_limited:{uuid.uuid4()}"
        else:
            key = outcome.result_type
        envelope = result_envelope(
            command,
            outcome.result_type,
            outcome.data,
            subject=outcome.subject,
            id=result_id(command.id, key),
            traceparent=self.telemetry.traceparent(command, record),
            tracestate=tracestate_of(command, record),
        )
        return Outgoing(self.topics.results, command.correlation_id, envelope)

    def _reply(
        self, command: Envelope, result: Any, subject: str | None, record: Incoming | None = None
    ) -> Outgoing:
        data = result.model_dump(mode="json")
        name = type(result).__name__
        # Never recorded: the same command id may later get a stored outcome of the same
        # type (sent again where it belongs), another answer that must not share this
        # one's id. A redelivery of this record is this answer again, with this id.
        key = name if record is None else f"{name}:unrecorded:{_record_digest(record)}"
        envelope = result_envelope(
            command,
            name,
            data,
            subject=subject,
            id=result_id(command.id, key),
            traceparent=self.telemetry.traceparent(command, record),
            tracestate=tracestate_of(command, record),
        )
        return Outgoing(self.topics.results, command.correlation_id, envelope)

    def _deadletter(self, record: Incoming, exc: Undecodable) -> Outgoing:
        metrics.DEAD_LETTERS.labels(exc.code).inc()
        envelope = deadletter_envelope(
            record.value,
            key=record.key,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=exc,
        )
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return Outgoing(self.topics.deadletter, key, envelope)


def _record_digest(record: Incoming) -> str:
    """What an unrecorded answer depends on: the record's topic and bytes."""
    digest = hashlib.sha256(record.topic.encode())
    digest.update(b"\0")
    digest.update(record.value or b"")
    return digest.hexdigest()[:32]
