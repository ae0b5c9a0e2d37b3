"""Executions: run a planned execution on its LM profile and record it (group commit).

A failure is recorded with the code and message ``runtime.lm_errors`` builds, upstream
text redacted by the worker's ``Redactor``: never an exception's own text.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from dspyops.aggregates.app import CommandContext, Completion, DspyOps, ExecutionPlan, Outcome
from dspyops.aggregates.app.executions import complete_executions
from dspyops.consumers.completion_batcher import CompletionBatcher
from dspyops.consumers.module_cache import ModuleCache
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry
from dspyops.events.envelope import Envelope
from dspyops.events.results import ErrorInfo, Usage
from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.pricing import cost_usd
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, UnknownProfile
from dspyops.runtime.redaction import Redactor


@dataclass
class ExecutionJobs:
    app: DspyOps
    profiles: ProfileRegistry
    modules: ModuleCache
    store_executor: Executor | None = None
    execution_timeout_s: float = 60.0
    redactor: Redactor = field(kw_only=True)
    telemetry: Telemetry = field(default_factory=Telemetry, kw_only=True)
    _batcher: CompletionBatcher | None = field(default=None, init=False, repr=False)

    async def run(self, envelope: Envelope, plan: ExecutionPlan, ctx: CommandContext) -> Outcome:
        """Call the LM for `plan`, then record the execution; one terminal outcome."""
        errors = LMErrors(plan.lm, self.redactor)
        try:
            profile = self.profiles.get(plan.lm)
            lm = self.profiles.build_lm(plan.lm)
        except UnknownProfile as exc:
            error = ErrorInfo(code="unknown_lm_profile", message=str(exc))
            return await self._record(Completion(plan, ctx, None, error, 0.0, Usage(), "", False))
        except ProfileError as exc:  # its key variable is not set on this worker
            code, message = errors.describe(exc)
            error = ErrorInfo(code=code, message=message)
            return await self._record(Completion(plan, ctx, None, error, 0.0, Usage(), "", False))
        module = self.modules.get(plan)
        # The profile's timeout is per attempt and the LM retries: the deadline covers all.
        deadline = min(self.execution_timeout_s, (profile.num_retries + 1) * profile.timeout_s)
        outcome = await execute_program(
            module,
            dict(plan.inputs),
            lm,
            timeout_s=deadline,
            errors=errors,
            steps=[step["name"] for step in plan.steps or []],
        )
        self.telemetry.program(outcome.trace, outcome.trace_started_ns)
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
            trace=outcome.trace,
            steps=outcome.steps,
            failed_step=outcome.failed_step,
            cost_usd=cost_usd(
                profile, outcome.usage.prompt_tokens, outcome.usage.completion_tokens
            ),
        )
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
