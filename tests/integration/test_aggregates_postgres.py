"""Two writers race on one Program in real PostgreSQL: nothing lost, nothing doubled.

Each writer is its own DspyOps (own connection pool, own aggregate cache), as two worker
processes would be. Conflicts surface as eventsourcing's IntegrityError and are retried.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    OptimizationPlan,
    Outcome,
    handle,
    optimizations,
)
from dspyops.aggregates.app.persistence import eventsourcing_env
from dspyops.aggregates.ids import command_uuid, execution_uuid, program_uuid
from dspyops.events.commands import (
    Command,
    DeployProgram,
    DeprecateProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
    UpdateProgram,
)
from tests.support.executions import complete

SIGNATURE = "question: str -> answer: str"
ROUNDS = 15


@pytest.fixture
def env(database_url: str, pg_schema: str) -> dict[str, str]:
    return eventsourcing_env(database_url, schema=pg_schema)


@pytest.fixture
def writers(env: dict[str, str]) -> Iterator[tuple[DspyOps, DspyOps]]:
    first, second = DspyOps(env), DspyOps(env)
    yield first, second
    first.close()
    second.close()


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id, actor="race")


Job = tuple[DspyOps, Command, CommandContext]


def race(*jobs: Job) -> list[Outcome]:
    """Handle the commands at the same moment, one thread per writer."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Job) -> Outcome:
        app, command, context = job
        barrier.wait()
        outcome = handle(app, command, context)
        assert isinstance(outcome, Outcome), outcome
        return outcome

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def optimized_program(app: DspyOps, program_id: str) -> None:
    handle(
        app,
        RegisterProgram(program_id=program_id, name="QA", signature=SIGNATURE),
        ctx(f"reg-{program_id}"),
    )
    examples = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(10)]
    handle(
        app,
        RegisterDataset(dataset_id=f"d-{program_id}", name="D", examples=examples),
        ctx(f"ds-{program_id}"),
    )
    plan = handle(
        app,
        OptimizeProgram(program_id=program_id, dataset_id=f"d-{program_id}"),
        ctx(f"opt-{program_id}"),
    )
    assert isinstance(plan, OptimizationPlan)
    done = optimizations.complete_optimization(
        app, plan.optimization_id, state={"demos": []}, baseline_score=0.1, optimized_score=0.2
    )
    assert done.result_type == "OptimizationCompleted"


def fresh_view(env: dict[str, str], program_id: str) -> dict[str, Any]:
    """The program rebuilt from its events alone: no snapshots, no cache."""
    rebuilt = DspyOps({**env, "IS_SNAPSHOTTING_ENABLED": "n", "AGGREGATE_CACHE_MAXSIZE": ""})
    try:
        return state_of(rebuilt, program_id)
    finally:
        rebuilt.close()


def state_of(app: DspyOps, program_id: str) -> dict[str, Any]:
    program = app.program(program_id)
    return {k: v for k, v in vars(program).items() if k != "_pending_events"}


def event_versions(app: DspyOps, program_id: str) -> list[int]:
    return [e.originator_version for e in app.events.get(program_uuid(program_id))]


def is_applied(outcome: Outcome) -> bool:
    if outcome.result_type == "CommandRejected":
        assert outcome.data["errors"][0]["type"] == "illegal_transition", outcome
        return False
    return True


def test_deploy_races_deprecate(writers: tuple[DspyOps, DspyOps], env: dict[str, str]) -> None:
    first, second = writers
    for n in range(ROUNDS):
        program_id = f"p{n}"
        optimized_program(first, program_id)
        deployed, deprecated = race(
            (first, DeployProgram(program_id=program_id, version=2), ctx(f"deploy-{n}")),
            (second, DeprecateProgram(program_id=program_id), ctx(f"deprecate-{n}")),
        )
        # Deprecate is allowed from optimized and deployed: it always applies.
        assert is_applied(deprecated)
        names = [type(e).__name__ for e in first.events.get(program_uuid(program_id))]
        if is_applied(deployed):
            assert names[-2:] == ["Deployed", "Deprecated"]
        else:
            assert names[-1] == "Deprecated"
            assert "Deployed" not in names
        versions = event_versions(first, program_id)
        assert versions == list(range(1, len(versions) + 1))
        assert state_of(first, program_id) == state_of(second, program_id)
        assert state_of(second, program_id) == fresh_view(env, program_id)


def test_concurrent_updates_are_all_applied(
    writers: tuple[DspyOps, DspyOps], env: dict[str, str]
) -> None:
    first, second = writers
    optimized_program(first, "p")
    handle(first, DeployProgram(program_id="p", version=2), ctx("deploy"))
    for n in range(ROUNDS * 2):
        described, instructed = race(
            (first, UpdateProgram(program_id="p", description=f"d{n}"), ctx(f"describe-{n}")),
            (second, UpdateProgram(program_id="p", instructions=f"i{n}"), ctx(f"instruct-{n}")),
        )
        assert described.result_type == instructed.result_type == "ProgramUpdated"
        program = second.program("p")
        assert (program.description, program.instructions) == (f"d{n}", f"i{n}")
    program = first.program("p")
    # v1 registered, v2 optimized, then one version per instructions update: none lost.
    assert program.latest_version == 2 + ROUNDS * 2
    assert [v["number"] for v in program.versions] == list(range(1, program.latest_version + 1))
    versions = event_versions(first, "p")
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) > DspyOps.snapshotting_intervals[type(program)]
    assert first.snapshots is not None
    assert list(first.snapshots.get(program_uuid("p")))
    assert state_of(first, "p") == state_of(second, "p") == fresh_view(env, "p")
    # The race was real: some saves lost and were retried.
    assert first.conflicts + second.conflicts > 0


def test_one_command_id_raced_by_two_writers_is_recorded_once(
    writers: tuple[DspyOps, DspyOps],
) -> None:
    first, second = writers
    handle(first, RegisterProgram(program_id="p", name="QA", signature=SIGNATURE), ctx("reg"))
    for n in range(ROUNDS):
        command = UpdateProgram(program_id="p", instructions=f"i{n}")
        one, two = race((first, command, ctx(f"same-{n}")), (second, command, ctx(f"same-{n}")))
        assert one == two
        assert one.data["new_version"] == n + 2
        assert len(list(first.events.get(command_uuid(f"same-{n}")))) == 1
    assert first.program("p").latest_version == ROUNDS + 1
    assert first.conflicts + second.conflicts > 0
    versions = event_versions(first, "p")
    assert versions == list(range(1, ROUNDS + 2))


def test_one_app_shared_by_threads_records_each_execution_once(
    writers: tuple[DspyOps, DspyOps],
) -> None:
    """As in the worker: one DspyOps, a pool of store threads, a program changing meanwhile."""
    app, other = writers
    handle(app, RegisterProgram(program_id="p", name="QA", signature=SIGNATURE), ctx("reg"))

    def run_one(n: int) -> Outcome:
        command, context = (
            ExecuteProgram(program_id="p", inputs={"question": f"q{n}"}),
            ctx(f"x{n}"),
        )
        plan = handle(app, command, context)
        if isinstance(plan, Outcome):  # redelivered: the stored outcome
            return plan
        return complete(app, plan, context, outputs={"answer": f"a{n}"}, latency_ms=1)

    def keep_updating() -> None:
        for n in range(10):
            handle(other, UpdateProgram(program_id="p", instructions=f"i{n}"), ctx(f"u{n}"))

    with ThreadPoolExecutor(8) as pool:
        updates = pool.submit(keep_updating)
        outcomes = list(pool.map(run_one, range(120)))
        updates.result()
    assert {o.result_type for o in outcomes} == {"ExecutionSucceeded"}
    assert {o.data["version"] for o in outcomes} <= set(range(1, 12))
    # Redelivering every command changes nothing and answers the same.
    length = app.recorder.max_notification_id()
    assert [run_one(n) for n in range(120)] == outcomes
    assert app.recorder.max_notification_id() == length
    for n in (0, 59, 119):
        names = [type(e).__name__ for e in app.events.get(execution_uuid(f"x{n}"))]
        assert names == ["Requested", "Succeeded"]
