"""Program lifecycle: every action from every status, versions, redeploys, rollback, updates."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.errors import IllegalTransition, NotFound
from dspyops.aggregates.program import STATUSES, Program
from tests.support.lifecycle import ALLOWED

META: dict[str, Any] = {"command_id": "c", "correlation_id": "c", "actor": "tester"}
ACTIONS = ("train", "optimize", "evaluate", "deploy", "rollback", "deprecate", "update")


def new_program() -> Program:
    return Program(
        program_id="p",
        name="P",
        signature="question: str -> answer: str",
        module="Predict",
        instructions="Answer.",
        description=None,
        field_descriptions={},
        lm="default",
        **META,
    )


def optimize(program: Program, score: float = 0.8) -> int:
    return program.add_optimized_version(
        optimization_id="o",
        state={"predict": {"demos": [{"question": "q", "answer": "a"}]}},
        optimizer="BootstrapFewShot",
        metric="exact_match",
        config={},
        dataset_id="d",
        baseline_score=0.5,
        optimized_score=score,
        plugin=None,
        **META,
    )


def program_in(status: str) -> Program:
    program = new_program()
    if status == "training":
        program.train(**META)
    elif status == "optimized":
        optimize(program)
    elif status == "deployed":
        # v1 served, then v2: a rollback to v1 and a deploy of v1 are both possible.
        optimize(program)
        program.deploy(1, **META)
        program.deploy(2, **META)
    elif status == "deprecated":
        optimize(program)
        program.deprecate(**META)
    assert program.status == status
    return program


def act(program: Program, action: str) -> None:
    if action == "train":
        program.train(**META)
    elif action == "optimize":
        optimize(program)
    elif action == "evaluate":
        program.check("evaluate")
    elif action == "deploy":
        program.deploy(1, **META)
    elif action == "rollback":
        program.rollback(1, **META)
    elif action == "deprecate":
        program.deprecate(**META)
    elif action == "update":
        program.update("new description", "new instructions", **META)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_from_every_status(status: str, action: str) -> None:
    program = program_in(status)
    pending = len(program.pending_events)
    if (status, action) in ALLOWED:
        act(program, action)
        assert program.status == ALLOWED[(status, action)]
        # An evaluation is its own aggregate: checking it records nothing on the program.
        assert len(program.pending_events) == pending + (action != "evaluate")
    else:
        with pytest.raises(IllegalTransition) as info:
            act(program, action)
        assert info.value.errors[0]["type"] == "illegal_transition"
        assert info.value.errors[0]["loc"] == ["status"]
        assert status in info.value.errors[0]["msg"]
        assert program.status == status
        assert len(program.pending_events) == pending


def test_events_carry_command_metadata() -> None:
    program = program_in("deployed")
    for event in program.collect_events():
        assert (event.command_id, event.correlation_id, event.actor) == ("c", "c", "tester")  # type: ignore[attr-defined]


def test_v1_is_unoptimized_and_optimization_adds_an_immutable_version() -> None:
    program = new_program()
    assert program.latest_version == 1
    assert program.get_version(1)["state"] is None
    assert optimize(program, score=0.9) == 2
    v2 = program.get_version(2)
    assert v2["source"] == "optimized"
    assert v2["state"] == {"predict": {"demos": [{"question": "q", "answer": "a"}]}}
    assert (v2["baseline_score"], v2["optimized_score"]) == (0.5, 0.9)
    assert (v2["optimizer"], v2["dataset_id"], v2["based_on"]) == ("BootstrapFewShot", "d", 1)
    assert program.get_version(1)["state"] is None


def test_serving_version_is_named_then_deployed_then_latest() -> None:
    program = program_in("optimized")
    assert program.serving_version()["number"] == 2
    program.deploy(2, **META)
    program.update(None, "newer", **META)
    assert program.latest_version == 3
    assert program.serving_version()["number"] == 2
    assert program.serving_version(1)["number"] == 1
    with pytest.raises(NotFound):
        program.serving_version(9)


def test_rollback_moves_the_alias_to_a_version_that_served_before_only() -> None:
    program = program_in("optimized")
    program.update(None, "newer", **META)  # v3
    program.deploy(2, **META)
    with pytest.raises(IllegalTransition) as never:
        program.rollback(1, **META)
    assert never.value.errors[0]["loc"] == ["version"]
    assert "never served" in never.value.errors[0]["msg"]
    with pytest.raises(IllegalTransition) as serving:
        program.rollback(2, **META)
    assert serving.value.errors[0]["loc"] == ["version"]
    with pytest.raises(NotFound):
        program.rollback(7, **META)
    program.deploy(3, **META)
    program.rollback(2, **META)
    assert (program.status, program.deployed_version) == ("deployed", 2)
    event = program.collect_events()[-1]
    assert type(event).__name__ == "RolledBack"
    assert (event.version, event.previous_version) == (2, 3)  # type: ignore[attr-defined]
    # "Earlier" is earlier in serving order, not a lower number: back to v3 from v2.
    program.rollback(3, **META)
    assert program.deployed_version == 3
    assert program.served_versions == [2, 3]


def test_a_program_keeps_improving_while_it_serves() -> None:
    program = new_program()
    assert optimize(program) == 2
    program.deploy(2, **META)
    assert optimize(program) == 3
    # A candidate waits beside the version serving: the program stays deployed.
    assert (program.status, program.deployed_version, program.latest_version) == ("deployed", 2, 3)
    program.deploy(3, **META)
    program.rollback(2, **META)
    assert optimize(program) == 4
    program.deploy(4, **META)
    assert (program.status, program.deployed_version, program.latest_version) == ("deployed", 4, 4)
    assert program.served_versions == [2, 3, 4]
    facts = [
        (type(e).__name__, getattr(e, "status", None), getattr(e, "version", None))
        for e in program.collect_events()[1:]
    ]
    assert facts == [
        ("Optimized", "optimized", 2),
        ("Deployed", "deployed", 2),
        ("Optimized", "deployed", 3),
        ("Deployed", "deployed", 3),
        ("RolledBack", None, 2),
        ("Optimized", "deployed", 4),
        ("Deployed", "deployed", 4),
    ]


def test_deploying_the_version_serving_now_is_refused() -> None:
    program = program_in("deployed")
    with pytest.raises(IllegalTransition) as info:
        program.deploy(2, **META)
    assert info.value.errors[0]["loc"] == ["version"]
    assert "serving already" in info.value.errors[0]["msg"]


def test_a_draft_deploys_its_first_version() -> None:
    program = new_program()
    program.deploy(1, **META)
    assert (program.status, program.deployed_version, program.served_versions) == (
        "deployed",
        1,
        [1],
    )


@pytest.mark.parametrize(
    ("status", "action", "reason"),
    [
        ("optimized", "train", "this program has begun"),
        ("draft", "rollback", "no version has served yet"),
        ("training", "deprecate", "only an optimized or deployed program"),
        ("deprecated", "optimize", "a deprecated program changes no more"),
        ("deprecated", "evaluate", "a deprecated program changes no more"),
        ("deprecated", "deploy", "a deprecated program changes no more"),
    ],
)
def test_each_refusal_says_why(status: str, action: str, reason: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        act(program_in(status), action)
    assert reason in info.value.errors[0]["msg"]


def test_replaying_the_events_gives_the_served_versions_back() -> None:
    program = new_program()
    optimize(program)
    program.deploy(2, **META)
    program.deploy(1, **META)
    program.rollback(2, **META)
    replayed = None
    for event in program.collect_events():
        replayed = event.mutate(replayed)
    assert isinstance(replayed, Program)
    assert (replayed.status, replayed.deployed_version, replayed.served_versions) == (
        "deployed",
        2,
        [2, 1],
    )


def test_deploy_needs_an_existing_version() -> None:
    program = program_in("optimized")
    with pytest.raises(NotFound):
        program.deploy(3, **META)
    assert program.status == "optimized"


def test_update_of_description_keeps_versions_instructions_make_a_new_one() -> None:
    program = program_in("optimized")
    program.update("described", None, **META)
    assert (program.description, program.latest_version) == ("described", 2)
    program.update(None, "Be terse.", **META)
    v3 = program.get_version(3)
    assert (v3["source"], v3["instructions"], v3["based_on"]) == ("updated", "Be terse.", 2)
    # The learned demos carry over to the new instructions.
    assert v3["state"] == program.get_version(2)["state"]
    assert program.get_version(2)["instructions"] == "Answer."


def test_events_carry_the_status_and_version_they_result_in() -> None:
    program = new_program()
    program.update("d", "Answer in one word.", **META)
    program.train(**META)
    optimize(program)
    program.deploy(3, **META)
    program.deprecate(**META)
    facts = [
        (type(e).__name__, getattr(e, "status", None), getattr(e, "version", None))
        for e in program.collect_events()
    ]
    assert facts == [
        ("Registered", "draft", 1),
        ("Updated", None, 2),
        ("TrainingStarted", "training", None),
        ("Optimized", "optimized", 3),
        ("Deployed", "deployed", 3),
        ("Deprecated", "deprecated", None),
    ]


def test_an_update_without_instructions_records_no_version() -> None:
    program = new_program()
    program.update("only the description", None, **META)
    updated = program.collect_events()[-1]
    assert isinstance(updated, Program.Updated)
    assert updated.version is None
    assert program.latest_version == 1
