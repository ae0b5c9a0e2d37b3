"""Optimization runs: DSPy work in a thread pool, watched from the event loop
(evaluations: ``consumers/evaluations.py``).

The faust loop only watches and records (the plan comes from the command table);
the optimizer runs in ``pool`` (one thread per run), so executions on the same worker
never wait for it. While a run works the loop polls, every ``poll_interval_s``:

- the stored run: a ``CancelOptimization`` (handled on the programs topic) marks it
  cancelled, and the run is told to stop;
- the time limit (``config.time_limit_s``);
- the run's progress, published as ``OptimizationProgress`` when a step ends, and as a
  heartbeat every ``heartbeat_s`` while the optimizer is calling the metric;
- the candidates the run scored (a resumable optimizer's, ``runtime.random_search``),
  each recorded as a checkpoint (``Optimization.CandidateScored``) through the store.

The command's offset is held by its agent until the terminal result is on Kafka: a
worker that dies mid-run gets the command again, ``plan_optimization`` says
``resumed=True``, and the run starts again from the recorded request and its
checkpoints: a resumable optimizer skips the candidates recorded, takes the baseline's
score from them and counts on from what they say was spent. Each start is
recorded as progress step 0 (``Run.starts`` counts them); a run interrupted
``MAX_STARTS`` times (a run that itself kills its worker would otherwise be redelivered
forever) fails with code ``interrupted``.

This module is long because one run's whole watch is here: its start, its stop
(cancel, time limit, budget), its progress and checkpoints, and its one ending.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dspyops import metrics
from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    OptimizationPlan,
    Outcome,
    Plan,
    optimizations,
)
from dspyops.aggregates.app.optimizations import BestFound
from dspyops.consumers.judges import JudgeUnavailable, build_judge, record_judge_calls
from dspyops.consumers.records import Outgoing
from dspyops.consumers.run_threads import abandon, in_run_thread, program_spec
from dspyops.consumers.store_calls import in_store
from dspyops.consumers.telemetry import Telemetry, current_traceparent, tracestate_of
from dspyops.events.envelope import Envelope, result_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.optimize import (
    Optimized,
    run_optimization,
)
from dspyops.runtime.optimizers import DEFAULT_TIME_LIMIT_S, InvalidConfig, parse_config
from dspyops.runtime.pipeline import Search
from dspyops.runtime.pricing import profile_prices
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, UnknownProfile
from dspyops.runtime.provenance import ResponseModels, run_provenance
from dspyops.runtime.redaction import Redactor
from dspyops.runtime.run_state import (
    BUDGET_EXCEEDED,
    CANCELLED,
    OPTIMIZATION_STEPS,
    TIME_LIMIT_EXCEEDED,
    Checkpoint,
    RunFailed,
    RunState,
    Stopped,
)

log = logging.getLogger(__name__)

MAX_STARTS = 3

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]


@dataclass
class RunJobs:
    app: DspyOps
    profiles: ProfileRegistry
    topics: Topics
    publish: Publish
    pool: Executor
    store_executor: Executor | None = None
    poll_interval_s: float = 0.5
    heartbeat_s: float = 5.0
    # Tells run failures (runtime.lm_errors): an exception's own text may echo secrets.
    redactor: Redactor = field(kw_only=True)
    # The corpus search a plan's program uses (consumers.corpora), if any step searches.
    search: Callable[[Plan], Search] | None = field(default=None, kw_only=True)
    # The run's phases and DSPy calls as spans, when tracing is on (runtime.run_trace).
    telemetry: Telemetry = field(default_factory=Telemetry, kw_only=True)

    async def optimize(
        self, envelope: Envelope, planned: OptimizationPlan, ctx: CommandContext
    ) -> Outcome:
        """Run a planned optimization to its one terminal outcome."""
        run_id = planned.optimization_id
        starts = planned.starts + 1
        if planned.resumed:
            log.warning("optimization %s was interrupted; running it again", run_id)
            if starts > MAX_STARTS:
                message = f"the worker stopped during this run {MAX_STARTS} times; not retried"
                return await self._fail(run_id, "interrupted", message)
        started = "started" if starts == 1 else f"started again after an interruption ({starts})"
        await self._progress(run_id, envelope, 0, OPTIMIZATION_STEPS, None, started)
        errors = LMErrors(planned.lm, self.redactor)
        try:
            lm = self.profiles.build_lm(planned.lm)
        except UnknownProfile as exc:
            return await self._fail(run_id, "unknown_lm_profile", str(exc))
        except ProfileError as exc:
            return await self._fail(run_id, *errors.describe(exc))
        prices = profile_prices(self.profiles, planned.lm)
        unenforceable = unpriced_budget(planned.budget, prices, planned.lm)
        if unenforceable is not None:
            return await self._fail(run_id, "unknown_price", unenforceable)
        state = RunState(_time_limit(planned), budget=planned.budget, prices=prices)
        models = ResponseModels()
        judge = None
        if planned.judge is not None:
            try:
                judge = build_judge(
                    planned.judge, planned.metric, self.profiles, self.redactor, self.search
                )
            except JudgeUnavailable as exc:
                return await self._fail(run_id, exc.code, exc.message)
        work = partial(
            run_optimization,
            program_spec(planned, self.search(planned) if self.search else None),
            optimizer=planned.optimizer,
            metric_name=planned.metric,
            config=dict(planned.config),
            trainset=list(planned.trainset),
            devset=list(planned.devset),
            lm=lm,
            state=state,
            errors=errors,
            models=models,
            judge=judge,
            checkpoints=[_checkpoint(c) for c in planned.checkpoints],
            trace=self.telemetry.run(self.redactor.redact, prices),
        )
        future = in_run_thread(self.pool, work)
        try:
            await self._watch(future, state, run_id, envelope)
        except asyncio.CancelledError:
            abandon(future, state)
            raise
        if judge is not None and planned.judge is not None:
            await record_judge_calls(
                self.app,
                self.store_executor,
                self.profiles,
                planned.judge,
                "optimization",
                run_id,
                ctx.correlation_id,
                judge.calls,
            )
        try:
            optimized: Optimized = await future
        except Stopped as stop:
            return await self._stopped(run_id, stop, state)
        except RunFailed as exc:
            return await self._fail(run_id, exc.code, exc.message, state)
        except Exception as exc:
            log.exception("optimization %s failed unexpectedly", run_id)
            return await self._fail(run_id, *errors.describe(exc), state)
        metrics.RUN_PROGRESS.labels(planned.program_id).set(1.0)
        return await self._in_store(
            partial(
                optimizations.complete_optimization,
                self.app,
                run_id,
                state=optimized.state,
                baseline_score=optimized.baseline_score,
                optimized_score=optimized.optimized_score,
                spend=state.spend(),
                provenance=run_provenance(
                    self.profiles.get(planned.lm),
                    models.sorted(),
                    optimizer=planned.optimizer,
                    config=dict(planned.config),
                ),
            )
        )

    async def _watch(
        self, future: asyncio.Future[Any], state: RunState, run_id: str, envelope: Envelope
    ) -> None:
        steps_reported = 0
        calls_reported = 0
        checkpointed = 0
        # The run's last event version read for a cancellation (only newer ones are read).
        read_to = 0
        last_report = time.monotonic()
        while not future.done():
            await asyncio.wait({future}, timeout=self.poll_interval_s)
            checkpointed += await self._checkpoints(run_id, state, checkpointed)
            if time.monotonic() > state.deadline:
                state.stop(TIME_LIMIT_EXCEEDED)
            else:
                cancelled, read_to = await self._in_store(
                    optimizations.cancelled_since, self.app, run_id, read_to
                )
                if cancelled:
                    state.stop(CANCELLED)
            if state.reason is not None:
                continue
            steps = state.finished_since(steps_reported)
            for step, total, best, message in steps:
                await self._progress(run_id, envelope, step, total, best, message, state)
            steps_reported += len(steps)
            step, total, best, calls, message = state.snapshot()
            if steps:
                calls_reported, last_report = calls, time.monotonic()
            elif calls != calls_reported and time.monotonic() - last_report >= self.heartbeat_s:
                calls_reported, last_report = calls, time.monotonic()
                message = f"{message}; {calls} metric calls so far"
                await self._progress(run_id, envelope, step, total, best, message, state)
        checkpointed += await self._checkpoints(run_id, state, checkpointed)
        if state.reason is None:
            for step, total, best, message in state.finished_since(steps_reported):
                await self._progress(run_id, envelope, step, total, best, message, state)

    async def _checkpoints(self, run_id: str, state: RunState, recorded: int) -> int:
        """Record the candidates scored since `recorded`; how many were taken."""
        taken = state.checkpoints_since(recorded)
        for checkpoint in taken:
            try:
                await self._in_store(
                    partial(optimizations.record_checkpoint, **vars(checkpoint)),
                    self.app,
                    run_id,
                )
            except Exception:
                # A checkpoint saves work after a crash: failing to record one must not
                # fail the run (started again, it makes that candidate again).
                log.warning("could not record a checkpoint of %s", run_id, exc_info=True)
        return len(taken)

    async def _progress(
        self,
        run_id: str,
        envelope: Envelope,
        step: int,
        total: int,
        best: float | None,
        message: str,
        state: RunState | None = None,
    ) -> None:
        try:
            outcome = await self._in_store(
                optimizations.record_progress, self.app, run_id, step, total, best
            )
            if outcome is None:
                return
            if total:
                metrics.RUN_PROGRESS.labels(outcome.data["program_id"]).set(step / total)
            spent = state.spend() if state is not None else {}
            data = {**outcome.data, "message": message, **spent}
            result = result_envelope(
                envelope,
                outcome.result_type,
                data,
                subject=outcome.subject,
                # Each progress message is its own event; the terminal result keeps the
                # deterministic id that makes a republished result recognisable.
                id=str(uuid.uuid4()),
                traceparent=current_traceparent(envelope),
                tracestate=tracestate_of(envelope),
            )
            await self.publish([Outgoing(self.topics.results, envelope.correlation_id, result)])
        except Exception:
            # Progress is informative: a failure to report it must not fail the run.
            log.warning("could not report progress of %s", run_id, exc_info=True)

    async def _stopped(self, run_id: str, stop: Stopped, state: RunState) -> Outcome:
        if stop.reason == TIME_LIMIT_EXCEEDED:
            message = f"the run exceeded its time limit of {state.time_limit_s:g} s"
            return await self._fail(run_id, TIME_LIMIT_EXCEEDED, message, state)
        if stop.reason == BUDGET_EXCEEDED:
            message = f"the run went over its budget: {state.over_budget() or 'limit reached'}"
            # runtime.Optimized and BestFound hold the same fields: one layer each.
            kept = None if stop.best is None else BestFound(**vars(stop.best))
            return await self._fail(run_id, BUDGET_EXCEEDED, message, state, kept)
        # A cancelled run already has its outcome stored with the cancel: this returns it.
        return await self._fail(run_id, CANCELLED, "cancelled on request", state)

    async def _fail(
        self,
        run_id: str,
        code: str,
        message: str,
        state: RunState | None = None,
        best: BestFound | None = None,
    ) -> Outcome:
        """End the run failed; `best`: the candidate a run stopped over budget keeps."""
        spend = state.spend() if state is not None else None
        fail = partial(optimizations.fail_optimization, best=best)
        outcome: Outcome = await self._in_store(fail, self.app, run_id, code, message, spend)
        return outcome

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        return await in_store(self.store_executor, fn, *args)


def _checkpoint(recorded: dict[str, Any]) -> Checkpoint:
    """A checkpoint the run recorded (Optimization.CandidateScored), for the runtime."""
    return Checkpoint(
        seed=recorded["seed"],
        score=recorded["score"],
        state=recorded["state"],
        baseline_score=recorded["baseline_score"],
        spent=recorded["spent"],
    )


def _time_limit(plan: OptimizationPlan) -> float:
    try:
        return parse_config(plan.optimizer, dict(plan.config)).time_limit_s
    except InvalidConfig:
        # The run itself reports the bad config; the limit only has to be sane meanwhile.
        return DEFAULT_TIME_LIMIT_S


def unpriced_budget(
    budget: dict[str, Any] | None, prices: tuple[float, float] | None, lm: str
) -> str | None:
    """Why a dollar budget cannot be kept (the LM has no known price), or None."""
    if budget is None or budget.get("max_usd") is None or prices is not None:
        return None
    return (
        f"the budget's max_usd needs the price of LM profile {lm!r}, which is unknown: "
        "give the profile input_cost_per_million and output_cost_per_million"
    )
