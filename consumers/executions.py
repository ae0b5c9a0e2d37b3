"""Executions: run a planned execution on its LM profile and record it (group commit).

A failure is recorded with the code and message ``runtime.lm_errors`` builds, upstream
text redacted by the worker's ``Redactor``: never an exception's own text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from dspyops import metrics
from dspyops.aggregates.app import CommandContext, Completion, DspyOps, ExecutionPlan, Outcome
from dspyops.aggregates.app.executions import complete_executions
from dspyops.aggregates.app.split_guard import GUARD_ACTOR, ArmWatch, remove_failing_arm
from dspyops.consumers.batcher import Batcher
from dspyops.consumers.completions import completion_of
from dspyops.consumers.judges import judge_online
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.records import Outgoing
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry
from dspyops.consumers.transient import is_transient
from dspyops.events.envelope import Envelope, result_envelope, result_id
from dspyops.events.results import ErrorInfo, Usage
from dspyops.events.topics import Topics
from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, UnknownProfile
from dspyops.runtime.redaction import Redactor

log = logging.getLogger(__name__)


@dataclass
class ExecutionJobs:
    app: DspyOps
    profiles: ProfileRegistry
    modules: ModuleCache
    store_executor: Executor | None = None
    execution_timeout_s: float = 60.0
    redactor: Redactor = field(kw_only=True)
    telemetry: Telemetry = field(default_factory=Telemetry, kw_only=True)
    # Where a split guard's result goes (the results topic); None: not published.
    topics: Topics | None = field(default=None, kw_only=True)
    publish: Callable[[Sequence[Outgoing]], Awaitable[None]] | None = field(
        default=None, kw_only=True
    )
    watch: ArmWatch = field(default_factory=ArmWatch, kw_only=True)
    _batcher: Batcher[Completion, Outcome] | None = field(default=None, init=False, repr=False)
    # Online judge calls under way: they run beside the next executions, never before
    # the result of the one they judge is published.
    _judging: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    async def run(self, envelope: Envelope, plan: ExecutionPlan, ctx: CommandContext) -> Outcome:
        """Call the LM for `plan`, then record the execution; one terminal outcome."""
        try:
            outcome = await self._run(plan, ctx)
        except Exception as exc:
            if plan.budgeted and not is_transient(exc):
                # The command ends here (an internal error, acknowledged): its reservation
                # must not hold the program's budget for the rest of the day.
                await in_store(
                    self.store_executor, self.app.ledger.settle, [(plan.execution_id, None)]
                )
            raise
        if plan.guard is not None:
            await self._guard(envelope, plan, ctx, outcome)
        if plan.judge is not None and outcome.result_type == "ExecutionSucceeded":
            task = asyncio.create_task(self._judge(plan, ctx, outcome))
            self._judging.add(task)
            task.add_done_callback(self._judging.discard)
        return outcome

    async def judged(self) -> None:
        """Wait for the online judge calls under way (tests; a worker that stops loses
        them: a sample missed, nothing else)."""
        while self._judging:
            await asyncio.gather(*self._judging)

    async def _judge(self, plan: ExecutionPlan, ctx: CommandContext, outcome: Outcome) -> None:
        """Online evaluation picked the execution (recorded now): its judge scores it."""
        try:
            await judge_online(
                self.app,
                self.store_executor,
                self.profiles,
                self.redactor,
                plan,
                ctx,
                dict(outcome.data.get("outputs") or {}),
                self._record,
            )
        except Exception:
            # The execution succeeded and is recorded: a judge that cannot judge it
            # (its profile missing here, the store busy) costs only the sample.
            log.warning("online judge of execution %s failed", plan.execution_id, exc_info=True)

    async def _guard(
        self, envelope: Envelope, plan: ExecutionPlan, ctx: CommandContext, outcome: Outcome
    ) -> None:
        """Count the execution in its split arm's window; take the arm out if it trips."""
        tripped = self.watch.observe(plan, failed=outcome.result_type == "ExecutionFailed")
        if tripped is None:
            return
        try:
            removed = await in_store(
                self.store_executor, remove_failing_arm, self.app, plan, ctx, *tripped
            )
        except Exception:
            # The execution is recorded and its outcome stands; the guard tries again at
            # the arm's next full window.
            log.exception(
                "split guard: could not take v%s of %s out", plan.version, plan.program_id
            )
            return
        if removed is None:
            log.info("split guard: v%s of %s is out already", plan.version, plan.program_id)
            return
        log.warning(
            "split guard took v%s out of %s's %s split: %s of its last %s executions failed",
            plan.version,
            plan.program_id,
            removed.data["alias"],
            *tripped,
        )
        if self.topics is None or self.publish is None:
            return
        # Caused by the execution that tripped it; said by the system (actor dspyops).
        announced = result_envelope(
            envelope,
            removed.result_type,
            removed.data,
            subject=removed.subject,
            id=result_id(envelope.id, removed.result_type),
        ).model_copy(update={"actor": GUARD_ACTOR})
        try:
            await self.publish([Outgoing(self.topics.results, plan.program_id, announced)])
        except Exception:
            # Stored and on dspyops.events (the relay's): only this announcement is lost.
            log.exception("split guard: could not publish %s", removed.result_type)

    async def _run(self, plan: ExecutionPlan, ctx: CommandContext) -> Outcome:
        errors = LMErrors(plan.lm, self.redactor)
        try:
            profile = self.profiles.get(plan.lm)
            lm = self.profiles.build_lm(plan.lm)
        except UnknownProfile as exc:
            error = ErrorInfo(code="unknown_lm_profile", message=str(exc))
            # No LM was called: nothing was billed.
            return await self._record(
                Completion(plan, ctx, None, error, 0.0, Usage(), "", False, cost_usd=0.0)
            )
        except ProfileError as exc:  # its key variable is not set on this worker
            code, message = errors.describe(exc)
            error = ErrorInfo(code=code, message=message)
            return await self._record(
                Completion(plan, ctx, None, error, 0.0, Usage(), "", False, cost_usd=0.0)
            )
        module = self.modules.get(plan)
        # The profile's timeout is per attempt and the LM retries: the deadline covers all.
        deadline = min(self.execution_timeout_s, (profile.num_retries + 1) * profile.timeout_s)
        metrics.EXECUTIONS_IN_FLIGHT.inc()
        try:
            outcome = await execute_program(
                module,
                dict(plan.inputs),
                lm,
                timeout_s=deadline,
                errors=errors,
                steps=[step["name"] for step in plan.steps or []],
            )
        finally:
            metrics.EXECUTIONS_IN_FLIGHT.dec()
        self.telemetry.program(outcome.trace, outcome.trace_started_ns)
        completion = completion_of(plan, ctx, outcome, profile, self.profiles)
        return await self._record(completion)

    async def _record(self, completion: Completion) -> Outcome:
        if self._batcher is None:
            self._batcher = Batcher(self._record_many)
        with self.telemetry.stage("record"):
            return await self._batcher.submit(completion)

    async def _record_many(self, completions: Sequence[Completion]) -> list[Outcome]:
        outcomes: list[Outcome] = await in_store(
            self.store_executor, complete_executions, self.app, completions
        )
        return outcomes
