"""Executions: run a planned execution on its LM profile and record it (group commit).

A failure is recorded with the code and message ``runtime.lm_errors`` builds, upstream
text redacted by the worker's ``Redactor``: never an exception's own text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from dspyops import metrics
from dspyops.aggregates.app import CommandContext, Completion, DspyOps, ExecutionPlan, Outcome
from dspyops.aggregates.app.executions import complete_executions
from dspyops.aggregates.app.split_guard import GUARD_ACTOR, ArmWatch, remove_failing_arm
from dspyops.consumers.completion_batcher import CompletionBatcher
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.records import Outgoing
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry
from dspyops.consumers.transient import is_transient
from dspyops.events.envelope import Envelope, result_envelope, result_id
from dspyops.events.results import ErrorInfo, Usage
from dspyops.events.topics import Topics
from dspyops.runtime.executor import ExecutionOutcome, execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.pricing import cost_usd, profile_prices
from dspyops.runtime.profiles import LMProfile, ProfileError, ProfileRegistry, UnknownProfile
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
    _batcher: CompletionBatcher | None = field(default=None, init=False, repr=False)

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
        return outcome

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
            self._batcher = CompletionBatcher(self._record_many)
        with self.telemetry.stage("record"):
            return await self._batcher.submit(completion)

    async def _record_many(self, completions: Sequence[Completion]) -> list[Outcome]:
        outcomes: list[Outcome] = await in_store(
            self.store_executor, complete_executions, self.app, completions
        )
        return outcomes


def completion_of(
    plan: ExecutionPlan,
    ctx: CommandContext,
    outcome: ExecutionOutcome,
    profile: LMProfile,
    profiles: ProfileRegistry,
) -> Completion:
    """What `complete_executions` records of one program call on `profile`: its LM
    spans priced, its cost, counted in the worker's metrics."""
    lms = lm_spans(outcome.trace)
    price_lm_spans(lms, profile_prices(profiles, plan.lm))
    cost = execution_cost(profile, outcome)
    _count(plan.program_id, outcome, cost, lms)
    failure = None
    if not outcome.ok:
        failure = ErrorInfo(
            code=outcome.error_code or "internal_error", message=outcome.error_message or ""
        )
    return Completion(
        plan=plan,
        ctx=ctx,
        outputs=outcome.outputs if outcome.ok else None,
        error=failure,
        latency_ms=outcome.latency_ms,
        usage=Usage(**outcome.usage.model_dump()),
        model=outcome.model,
        offline=profile.offline,
        trace=outcome.trace,
        steps=outcome.steps,
        failed_step=outcome.failed_step,
        cost_usd=cost,
    )


def _count(
    program_id: str, outcome: ExecutionOutcome, cost: float | None, lms: list[dict[str, Any]]
) -> None:
    """The execution in the worker's metrics (an output that fails the signature check
    afterwards still counts as the program's run it was)."""
    metrics.EXECUTIONS.labels(program_id, "succeeded" if outcome.ok else "failed").inc()
    metrics.EXECUTION_SECONDS.labels(program_id).observe(outcome.latency_ms / 1000)
    metrics.LM_TOKENS.labels(program_id, "prompt").inc(outcome.usage.prompt_tokens)
    metrics.LM_TOKENS.labels(program_id, "completion").inc(outcome.usage.completion_tokens)
    if cost is None:
        metrics.UNPRICED.labels(program_id).inc()
    else:
        metrics.COST.labels(program_id).inc(cost)
    for span in lms:
        if span.get("latency_ms") is not None:
            model = str(span.get("model") or span.get("name"))
            metrics.LM_CALL_SECONDS.labels(model).observe(span["latency_ms"] / 1000)


def lm_spans(span: dict[str, Any] | None) -> list[dict[str, Any]]:
    if span is None:
        return []
    found = [span] if span.get("kind") == "lm" else []
    for child in span.get("children", []):
        found += lm_spans(child)
    return found


def execution_cost(profile: LMProfile, outcome: ExecutionOutcome) -> float | None:
    """What an execution cost: nothing without an LM call; unknown (None) when its LM
    calls came without token counts or the model has no known price."""
    if outcome.lm_calls == 0:
        return 0.0
    if not outcome.usage_reported:
        return None
    return cost_usd(profile, outcome.usage.prompt_tokens, outcome.usage.completion_tokens)


def price_lm_spans(lms: list[dict[str, Any]], prices: tuple[float, float] | None) -> None:
    """Each LM span (`lm_spans` of a trace) gets its `cost_usd` (None: the price or its
    tokens unknown)."""
    for span in lms:
        usage = span.get("usage") or {}
        known = prices is not None and "prompt_tokens" in usage and "completion_tokens" in usage
        span["cost_usd"] = (
            usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]
            if known and prices is not None
            else None
        )
