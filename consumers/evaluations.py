"""Evaluation runs: DSPy scores a program version in a pool thread, watched from the loop.

The loop only watches the time limit; the run's thread scores the dev split. The
command's offset is held until the terminal result is on Kafka, so a worker that dies
mid-run gets the command again and the evaluation starts over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    EvaluationPlan,
    Outcome,
    Plan,
    evaluations,
)
from dspyops.consumers.judges import JudgeUnavailable, build_judge, record_judge_calls
from dspyops.consumers.run_threads import abandon, in_run_thread, program_spec
from dspyops.consumers.runs import unpriced_budget
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry
from dspyops.events.envelope import Envelope
from dspyops.runtime.evaluate import Scored
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.optimize import run_evaluation
from dspyops.runtime.optimizers import DEFAULT_TIME_LIMIT_S
from dspyops.runtime.pipeline import Search
from dspyops.runtime.pricing import profile_prices
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, UnknownProfile
from dspyops.runtime.provenance import ResponseModels, run_provenance
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.run_state import (
    BUDGET_EXCEEDED,
    TIME_LIMIT_EXCEEDED,
    RunFailed,
    RunState,
    Stopped,
)

log = logging.getLogger(__name__)


@dataclass
class EvaluationJobs:
    app: DspyOps
    profiles: ProfileRegistry
    pool: Executor
    store_executor: Executor | None = None
    poll_interval_s: float = 0.5
    # Tells run failures (runtime.lm_errors): an exception's own text may echo secrets.
    redactor: Redactor = field(kw_only=True)
    # The corpus search a plan's program uses (consumers.corpora), if any step searches.
    search: Callable[[Plan], Search] | None = field(default=None, kw_only=True)
    # The run's DSPy calls as spans, when tracing is on (runtime.run_trace).
    telemetry: Telemetry = field(default_factory=Telemetry, kw_only=True)

    async def evaluate(
        self, envelope: Envelope, planned: EvaluationPlan, ctx: CommandContext
    ) -> Outcome:
        """Score a planned evaluation to its one terminal outcome."""
        run_id = planned.evaluation_id
        errors = LMErrors(planned.lm, self.redactor)
        try:
            lm = self.profiles.build_lm(planned.lm)
        except UnknownProfile as exc:
            return await self._fail_evaluation(run_id, "unknown_lm_profile", str(exc))
        except ProfileError as exc:
            return await self._fail_evaluation(run_id, *errors.describe(exc))
        prices = profile_prices(self.profiles, planned.lm)
        unenforceable = unpriced_budget(planned.budget, prices, planned.lm)
        if unenforceable is not None:
            return await self._fail_evaluation(run_id, "unknown_price", unenforceable)
        state = RunState(DEFAULT_TIME_LIMIT_S, budget=planned.budget, prices=prices)
        models = ResponseModels()
        judge = None
        if planned.judge is not None:
            try:
                judge = build_judge(
                    planned.judge, planned.metric, self.profiles, self.redactor, self.search
                )
            except JudgeUnavailable as exc:
                return await self._fail_evaluation(run_id, exc.code, exc.message)
        work = partial(
            run_evaluation,
            program_spec(planned, self.search(planned) if self.search else None),
            metric_name=planned.metric,
            devset=list(planned.devset),
            lm=lm,
            state=state,
            errors=errors,
            models=models,
            judge=judge,
            trace=self.telemetry.run(self.redactor.redact, prices),
        )
        future = in_run_thread(self.pool, work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.poll_interval_s)
                if time.monotonic() > state.deadline:
                    state.stop(TIME_LIMIT_EXCEEDED)
        except asyncio.CancelledError:
            abandon(future, state)
            raise
        if judge is not None and planned.judge is not None:
            # Before the run's ending: its reader finds the judge's executions recorded.
            await record_judge_calls(
                self.app,
                self.store_executor,
                self.profiles,
                planned.judge,
                "evaluation",
                run_id,
                ctx.correlation_id,
                judge.calls,
            )
        try:
            scored: Scored = await future
        except Stopped as stop:
            if stop.reason == BUDGET_EXCEEDED:
                over = state.over_budget() or "limit reached"
                message = f"the evaluation went over its budget: {over}"
                return await self._fail_evaluation(run_id, BUDGET_EXCEEDED, message, state)
            message = f"the evaluation exceeded its time limit of {state.time_limit_s:g} s"
            return await self._fail_evaluation(run_id, TIME_LIMIT_EXCEEDED, message, state)
        except RunFailed as exc:
            return await self._fail_evaluation(run_id, exc.code, exc.message, state)
        except Exception as exc:
            log.exception("evaluation %s failed unexpectedly", run_id)
            return await self._fail_evaluation(run_id, *errors.describe(exc), state)
        outcome: Outcome = await self._in_store(
            evaluations.complete_evaluation,
            self.app,
            run_id,
            scored.score,
            scored.per_example,
            scored.errored,
            state.spend(),
            run_provenance(self.profiles.get(planned.lm), models.sorted()),
        )
        return outcome

    async def _fail_evaluation(
        self, run_id: str, code: str, message: str, state: RunState | None = None
    ) -> Outcome:
        spend = state.spend() if state is not None else None
        outcome: Outcome = await self._in_store(
            evaluations.fail_evaluation, self.app, run_id, code, message, spend
        )
        return outcome

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        return await in_store(self.store_executor, fn, *args)
