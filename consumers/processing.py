"""From one command record to the messages it causes: no Kafka client here, only decisions.

The faust agents and the tests share this, so what a worker does with a record is tested
without a broker and exercised with one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dspyops.aggregates.application import CommandContext, DspyOps, ExecutionPlan, Outcome
from dspyops.aggregates.execution_service import Completion
from dspyops.consumers.completion_batcher import CompletionBatcher
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.optimizations import RunJobs
from dspyops.consumers.records import Incoming, Outgoing
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.transient import is_transient
from dspyops.events.codec import InvalidCommand, Undecodable, decode_command, decode_envelope
from dspyops.events.commands import EvaluateProgram, ExecuteProgram, OptimizeProgram
from dspyops.events.deadletter import deadletter_envelope
from dspyops.events.envelope import Envelope, result_envelope
from dspyops.events.results import CommandRejected, ErrorInfo, ErrorItem, Usage
from dspyops.events.topics import Topics, command_topic
from dspyops.runtime.executor import execute_program
from dspyops.runtime.profiles import ProfileRegistry, UnknownProfile

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Processor:
    """Everything a command needs: the event store, LM profiles and built modules."""

    app: DspyOps
    topics: Topics
    profiles: ProfileRegistry
    modules: ModuleCache
    store_executor: Executor | None = None
    execution_timeout_s: float = 60.0
    _batcher: CompletionBatcher | None = field(default=None, init=False, repr=False)
    # Optimizations and evaluations; without it they are rejected as internal errors.
    runs: RunJobs | None = None

    async def process(self, record: Incoming) -> list[Outgoing]:
        """The messages to publish for `record`. Raises only for transient outages."""
        try:
            envelope = decode_envelope(record.value)
        except Undecodable as exc:
            return [self._deadletter(record, exc)]
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
                )
            ]

    async def _process_envelope(self, record: Incoming, envelope: Envelope) -> list[Outgoing]:
        wrong_topic = self._wrong_topic(record, envelope)
        if wrong_topic is not None:
            return [self._reply(envelope, wrong_topic, envelope.subject)]
        try:
            command = decode_command(envelope)
        except InvalidCommand as exc:
            rejected = CommandRejected(command_type=envelope.short_type, errors=exc.errors)
            return [self._reply(envelope, rejected, envelope.subject)]
        ctx = CommandContext(
            command_id=envelope.id,
            correlation_id=envelope.correlation_id,
            actor=envelope.actor,
            command_type=envelope.short_type,
        )
        if isinstance(command, ExecuteProgram):
            outcome = await self._execute(command, ctx)
        elif isinstance(command, OptimizeProgram | EvaluateProgram) and self.runs is not None:
            outcome = await self.runs.run(envelope, command, ctx)
        else:
            outcome = await self._in_store(self.app.handle, command, ctx)
        return [self._outcome(envelope, outcome)]

    def _wrong_topic(self, record: Incoming, envelope: Envelope) -> CommandRejected | None:
        try:
            expected = command_topic(self.topics, envelope.short_type)
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

    async def _execute(self, command: ExecuteProgram, ctx: CommandContext) -> Outcome:
        planned = await self._in_store(self.app.plan_execution, command, ctx)
        if isinstance(planned, Outcome):
            return planned
        return await self._run_and_record(planned, ctx)

    async def _run_and_record(self, plan: ExecutionPlan, ctx: CommandContext) -> Outcome:
        try:
            profile = self.profiles.get(plan.lm)
            lm = self.profiles.build_lm(plan.lm)
        except UnknownProfile as exc:
            error = ErrorInfo(code="unknown_lm_profile", message=str(exc))
            return await self._record(Completion(plan, ctx, None, error, 0.0, Usage(), "", False))
        module = self.modules.get(plan)
        # The profile's timeout is per attempt and the LM retries: the deadline covers all.
        deadline = min(self.execution_timeout_s, (profile.num_retries + 1) * profile.timeout_s)
        outcome = await execute_program(module, dict(plan.inputs), lm, timeout_s=deadline)
        failure = None
        if not outcome.ok:
            failure = ErrorInfo(
                code=outcome.error_code or "internal_error", message=outcome.error_message or ""
            )
        completion = Completion(
            plan=plan,
            ctx=ctx,
            outputs=outcome.outputs if outcome.ok else None,
            error=failure,
            latency_ms=outcome.latency_ms,
            usage=Usage(**outcome.usage.model_dump()),
            model=outcome.model,
            offline=profile.offline,
        )
        return await self._record(completion)

    async def _record(self, completion: Completion) -> Outcome:
        if self._batcher is None:
            self._batcher = CompletionBatcher(self._record_many)
        return await self._batcher.submit(completion)

    async def _record_many(self, completions: Sequence[Completion]) -> list[Outcome]:
        outcomes: list[Outcome] = await self._in_store(self.app.complete_executions, completions)
        return outcomes

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        return await in_store(self.store_executor, fn, *args)

    def _outcome(self, command: Envelope, outcome: Outcome) -> Outgoing:
        envelope = result_envelope(
            command, outcome.result_type, outcome.data, subject=outcome.subject
        )
        return Outgoing(self.topics.results, command.correlation_id, envelope)

    def _reply(self, command: Envelope, result: Any, subject: str | None) -> Outgoing:
        data = result.model_dump(mode="json")
        envelope = result_envelope(command, type(result).__name__, data, subject=subject)
        return Outgoing(self.topics.results, command.correlation_id, envelope)

    def _deadletter(self, record: Incoming, exc: Undecodable) -> Outgoing:
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
