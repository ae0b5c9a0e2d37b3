"""Stored events for the read-side tests and the benchmark, made through DspyOps.

`seed_story` drives the real application service (every lifecycle step, runs, failures);
`bulk_executions` saves finished Execution aggregates in large batches, the fast way to
store thousands of events. Holds no tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from dspyops.aggregates.app import DspyOps, evaluations, handle, optimizations
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.plans import ExecutionPlan
from dspyops.aggregates.execution import Execution
from dspyops.events.commands import (
    DeployProgram,
    EvaluateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RecordFeedback,
    RegisterDataset,
    RegisterProgram,
    RemoveAlias,
    RollbackProgram,
    SetAlias,
    SetBudget,
    TrainProgram,
    UpdateProgram,
)
from dspyops.events.results import ErrorInfo, LMProfileUsed, Provenance
from tests.support.executions import complete

QA_SIGNATURE = "question: str, context: str -> answer: str, confidence: float"

# What opt1 ran with: the read API shows it (tests/integration/test_api_routes.py).
PROVENANCE = Provenance(
    dspy_version="3.4.1",
    dspyops_version="0.1.0",
    optimizer_config={"k": 16},
    seed=0,
    lm_profiles=[
        LMProfileUsed(profile="default", model="offline", offline=True, response_models=[])
    ],
)


def ctx(actor: str | None = "alice") -> CommandContext:
    command_id = uuid.uuid4().hex
    return CommandContext(command_id=command_id, correlation_id=f"corr-{command_id}", actor=actor)


@contextmanager
def schemas(database_url: str, *names: str) -> Iterator[tuple[str, ...]]:
    """Unique schemas for one test, created empty and dropped afterwards whatever happens."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield names
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


COST_USD = 0.0015


def execute(app: DspyOps, program_id: str, *, fail: bool = False, latency_ms: float = 10.0) -> str:
    c = ctx()
    command = ExecuteProgram(
        program_id=program_id, inputs={"question": "q?", "context": "c"}, execution_id=c.command_id
    )
    plan = handle(app, command, c)
    assert isinstance(plan, ExecutionPlan), plan
    if fail:
        complete(
            app, plan, c, error=ErrorInfo(code="lm_error", message="boom"), latency_ms=latency_ms
        )
    else:
        complete(
            app,
            plan,
            c,
            outputs={"answer": "a", "confidence": 0.5},
            latency_ms=latency_ms,
            usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            model="offline/echo",
            offline=True,
            # Priced, while the failures (above) have no known price: stats sum the known.
            cost_usd=COST_USD,
        )
    return c.command_id


def seed_story(app: DspyOps) -> dict[str, Any]:
    """Two programs through their lifecycle, a dataset, executions, an optimization, an
    evaluation; returns the ids the tests look for."""
    handle(
        app,
        RegisterProgram(
            program_id="qa",
            name="Question answering",
            signature=QA_SIGNATURE,
            instructions="Answer briefly.",
            field_descriptions={"answer": "a short answer"},
        ),
        ctx(),
    )
    handle(
        app,
        RegisterProgram(program_id="sum", name="Summarize", signature="text: str -> summary: str"),
        ctx("bob"),
    )
    budget = SetBudget(program_id="sum", usd_per_day=2.5, reason="pilot")
    assert handle(app, budget, ctx("dana")).result_type == "ProgramBudgetSet"
    examples = [
        {"question": f"q{i}", "context": "c", "answer": f"a{i}", "confidence": 0.9}
        for i in range(20)
    ]
    handle(app, RegisterDataset(dataset_id="ds", name="QA set", examples=examples), ctx())
    ok = [execute(app, "qa", latency_ms=10.0 * (i + 1)) for i in range(6)]
    bad = [execute(app, "qa", fail=True) for _ in range(2)]
    handle(app, TrainProgram(program_id="qa"), ctx())
    c = ctx()
    planned = handle(
        app, OptimizeProgram(program_id="qa", dataset_id="ds", optimization_id="opt1"), c
    )
    assert not hasattr(planned, "result_type"), planned
    optimizations.record_progress(app, "opt1", 1, 2, 0.5)
    optimizations.complete_optimization(
        app,
        "opt1",
        state={"demos": []},
        baseline_score=0.4,
        optimized_score=0.8,
        provenance=PROVENANCE,
    )
    # v1 serves first, then v2; the rollback returns to v1, which served before.
    first = handle(app, DeployProgram(program_id="qa", version=1), ctx())
    assert isinstance(first, Outcome)
    assert first.result_type == "ProgramDeployed"
    handle(app, DeployProgram(program_id="qa", version=2), ctx("carol"))
    handle(app, UpdateProgram(program_id="qa", instructions="Answer in one word."), ctx())
    rolled = handle(app, RollbackProgram(program_id="qa", version=1), ctx())
    assert rolled.result_type == "ProgramRolledBack", rolled
    # Aliases beside production: staging set, moved and kept; canary set and removed.
    for alias, version, actor, reason in (
        ("staging", 2, "frank", "new demos"),
        ("canary", 3, "frank", None),
        ("staging", 3, "gina", "one-word answers"),
    ):
        aliased = handle(
            app, SetAlias(program_id="qa", alias=alias, version=version, reason=reason), ctx(actor)
        )
        assert aliased.result_type == "ProgramAliasSet", aliased
    removed = handle(
        app, RemoveAlias(program_id="qa", alias="canary", reason="seen enough"), ctx("gina")
    )
    assert removed.result_type == "ProgramAliasRemoved", removed
    handle(app, EvaluateProgram(program_id="qa", dataset_id="ds", evaluation_id="ev1"), ctx())
    per_example: list[dict[str, Any]] = [
        {"index": 0, "score": 1.0},
        {"index": 1, "score": 0.0, "error": "lm_error"},
    ]
    evaluations.complete_evaluation(app, "ev1", 0.5, per_example, errored=1)
    later = [execute(app, "qa", latency_ms=5.0) for _ in range(2)]
    feedback = [
        RecordFeedback(execution_id=ok[0], score=1.0, label="good"),
        RecordFeedback(
            execution_id=ok[0],
            score=0.5,
            comment="right, but unsure",
            corrected_outputs={"answer": "a", "confidence": 1.0},
        ),
        RecordFeedback(execution_id=bad[0], corrected_outputs={"answer": "b", "confidence": 1.0}),
    ]
    for given in feedback:
        assert handle(app, given, ctx("erin")).result_type == "FeedbackRecorded"
    return {"succeeded": ok + later, "failed": bad}


def bulk_executions(
    app: DspyOps, program_id: str, count: int, *, batch: int = 500, threads: int = 4
) -> None:
    """Store `count` finished executions (2 events each), every 7th one failed."""

    def save(start: int) -> None:
        executions = []
        for number in range(start, min(start + batch, count)):
            c = ctx(actor=f"user{number % 3}")
            execution = Execution(
                execution_id=f"{program_id}-x{number}",
                program_id=program_id,
                version=1,
                inputs={"question": f"q{number}", "context": "c"},
                **c.meta(),
            )
            if number % 7 == 6:
                execution.fail(
                    code="lm_error",
                    message="boom",
                    details=[],
                    latency_ms=None,
                    model=None,
                    **c.meta(),
                )
            else:
                execution.succeed(
                    outputs={"answer": "a", "confidence": 0.5},
                    latency_ms=float(number % 100 + 1),
                    usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    model="offline/echo",
                    offline=True,
                    **c.meta(),
                )
            executions.append(execution)
        app.save(*executions)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(save, range(0, count, batch)))
