"""A run's judge program (``judge:<program_id>[@alias]`` metric): built before the run,
its calls recorded as executions of the judge program after it.

Each judge call is an Execution of the judge version the run pinned, recorded like any
other (group commit, `complete_executions`), so the judge's stats, costs and traces
count it. It says why it ran: actor ``judge:<run id>``, and a route whose reason names
the run. Its id is ``<run id>:judge-<n>`` (n counts the run's judge calls from 1): a run
that records them again (a crash between recording and the run's ending) finds them
recorded and records nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from dspyops.aggregates.app import (
    CommandContext,
    Completion,
    DspyOps,
    ExecutionPlan,
    Outcome,
    Plan,
    handle,
)
from dspyops.aggregates.app.executions import complete_executions
from dspyops.aggregates.app.plans import JudgePlan
from dspyops.consumers.completions import completion_of
from dspyops.consumers.run_threads import shape_of
from dspyops.consumers.store_calls import in_store
from dspyops.events.commands import MAX_FEEDBACK_COMMENT_CHARS, RecordFeedback
from dspyops.events.results import Route
from dspyops.runtime.executor import execute_program
from dspyops.runtime.judge import SCORE, Judge, JudgeCall, bound_inputs, normalised
from dspyops.runtime.lm_errors import LMErrors
from dspyops.runtime.pipeline import Search
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, UnknownProfile
from dspyops.runtime.programs import build_program
from dspyops.runtime.redaction import Redactor

ACTOR_PREFIX = "judge:"
# Judge executions saved per transaction: a GEPA run may call its judge thousands of times.
BATCH = 100
_MAX_ID = 128
# JudgePlan's fields that are not an ExecutionPlan's.
_JUDGE_ONLY = {"alias", "bindings", "score_low", "score_high", "rationale"}


class JudgeUnavailable(Exception):
    """The judge cannot run on this worker: (code, message) for the run's failure."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def build_judge(
    plan: JudgePlan,
    metric: str,
    profiles: ProfileRegistry,
    redactor: Redactor,
    search: Callable[[Plan], Search] | None = None,
) -> Judge:
    """The judge program on its own LM profile; raises JudgeUnavailable."""
    errors = LMErrors(plan.lm, redactor)
    try:
        profile = profiles.get(plan.lm)
        lm = profiles.build_lm(plan.lm)
    except UnknownProfile as exc:
        raise JudgeUnavailable("unknown_lm_profile", f"the judge's {exc}") from exc
    except ProfileError as exc:
        raise JudgeUnavailable(*errors.describe(exc)) from exc
    program = build_program(shape_of(plan), plan.state, search=search(plan) if search else None)
    return Judge(
        name=metric,
        program=program,
        lm=lm,
        errors=errors,
        bindings=plan.bindings,
        low=plan.score_low,
        high=plan.score_high,
        rationale=plan.rationale,
        # As an execution's: the profile's timeout per attempt, with its retries.
        timeout_s=(profile.num_retries + 1) * profile.timeout_s,
        steps=[step["name"] for step in plan.steps or []],
    )


def judge_execution_id(run_id: str, n: int) -> str:
    execution_id = f"{run_id}:judge-{n}"
    if len(execution_id) <= _MAX_ID:
        return execution_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:32]
    return f"judge-{digest}-{n}"


async def record_judge_calls(
    app: DspyOps,
    store_executor: Executor | None,
    profiles: ProfileRegistry,
    plan: JudgePlan,
    kind: str,
    run_id: str,
    correlation_id: str,
    calls: list[JudgeCall],
) -> None:
    """Every judge call of run `run_id` (an `kind`: evaluation, optimization) recorded
    as an execution of the judge program, in batches of `BATCH`."""
    if not calls:
        return
    profile = profiles.get(plan.lm)
    route = Route(alias=plan.alias, reason=f"judge of {kind} {run_id}").model_dump()
    fields: dict[str, Any] = plan.model_dump(exclude=_JUDGE_ONLY)
    completions = []
    for n, call in enumerate(list(calls), start=1):
        execution_id = judge_execution_id(run_id, n)
        execution = ExecutionPlan(
            **fields, execution_id=execution_id, inputs=call.inputs, route=route
        )
        ctx = CommandContext(
            command_id=execution_id,
            correlation_id=correlation_id,
            actor=f"{ACTOR_PREFIX}{run_id}",
            command_type="ExecuteProgram",
        )
        completions.append(completion_of(execution, ctx, call.outcome, profile, profiles))
    for start in range(0, len(completions), BATCH):
        await in_store(store_executor, complete_executions, app, completions[start : start + BATCH])


# --- online evaluation (SetOnlineEvaluation) --------------------------------------------

ONLINE_TIMEOUT_S = 60.0


async def judge_online(
    app: DspyOps,
    store_executor: Executor | None,
    profiles: ProfileRegistry,
    redactor: Redactor,
    plan: ExecutionPlan,
    ctx: CommandContext,
    outputs: dict[str, Any],
    record: Callable[[Completion], Awaitable[Outcome]],
) -> Outcome | None:
    """Judge one recorded, succeeded execution picked for online evaluation: the judge's
    call is recorded (`record`: the executions' group commit) as an execution of the
    judge, and its score, if in range, as feedback on the execution; None: no score."""
    judge = plan.judge
    assert judge is not None
    profile = profiles.get(judge.lm)
    lm = profiles.build_lm(judge.lm)
    program = build_program(shape_of(judge), judge.state)
    inputs = bound_inputs(judge.bindings, plan.inputs, outputs)
    outcome = await execute_program(
        program,
        inputs,
        lm,
        timeout_s=min(ONLINE_TIMEOUT_S, (profile.num_retries + 1) * profile.timeout_s),
        errors=LMErrors(judge.lm, redactor),
        steps=[step["name"] for step in judge.steps or []],
    )
    execution_id = _bounded_id(f"{plan.execution_id}:judge")
    fields: dict[str, Any] = judge.model_dump(exclude=_JUDGE_ONLY)
    call = ExecutionPlan(
        **fields,
        execution_id=execution_id,
        inputs=inputs,
        route=Route(
            alias=judge.alias, reason=f"online judge of execution {plan.execution_id}"
        ).model_dump(),
    )
    actor = f"{ACTOR_PREFIX}{judge.program_id}"
    call_ctx = CommandContext(
        command_id=execution_id,
        correlation_id=ctx.correlation_id,
        actor=actor,
        command_type="ExecuteProgram",
    )
    await record(completion_of(call, call_ctx, outcome, profile, profiles))
    score = normalised((outcome.outputs or {}).get(SCORE), judge.score_low, judge.score_high)
    if not outcome.ok or score is None:
        return None
    rationale = (outcome.outputs or {}).get(judge.rationale) if judge.rationale else None
    feedback_ctx = call_ctx.model_copy(
        update={"command_id": f"{execution_id}-feedback", "command_type": "RecordFeedback"}
    )
    result: Outcome = await in_store(
        store_executor, _record_judgement, app, plan, score, rationale, feedback_ctx
    )
    return result


def _record_judgement(
    app: DspyOps,
    plan: ExecutionPlan,
    score: float,
    rationale: Any,
    ctx: CommandContext,
) -> Outcome:
    """The judge's score (0..1) on the program's feedback scale, as RecordFeedback from
    the judge: handled as that command is (checked, recorded once per id)."""
    low, high = app.program(plan.program_id, copy=False).scale
    comment = str(rationale)[:MAX_FEEDBACK_COMMENT_CHARS] if rationale else None
    command = RecordFeedback(
        execution_id=plan.execution_id, score=low + score * (high - low), comment=comment
    )
    outcome = handle(app, command, ctx)
    assert isinstance(outcome, Outcome)
    return outcome


def _bounded_id(execution_id: str) -> str:
    if len(execution_id) <= _MAX_ID:
        return execution_id
    return f"judge-{hashlib.sha256(execution_id.encode()).hexdigest()[:40]}"
