"""How the client reads results and keys commands (no broker needed, kept beside its tests)."""

from __future__ import annotations

import pytest

from dspyops.client.errors import CommandFailedError, CommandRejectedError, raise_for
from dspyops.client.keys import record_key
from dspyops.client.replies import parse_reply
from dspyops.events.envelope import Envelope, command_envelope


def _result(type_: str, data: dict) -> Envelope:
    return Envelope(id="r1", type=f"dspyops.result.{type_}", data=data, causationid="c1")


SUCCEEDED = {
    "execution_id": "e1",
    "program_id": "qa",
    "version": 2,
    "outputs": {"answer": "4"},
    "latency_ms": 3.5,
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    "model": "openai/gpt-4o-mini",
}


def test_a_result_is_typed_and_fields_a_later_version_adds_are_ignored() -> None:
    reply = parse_reply(_result("ExecutionSucceeded", {**SUCCEEDED, "cost_usd": 0.01}))
    assert reply.result is not None
    assert reply.type == "ExecutionSucceeded"
    assert reply.program_id == "qa"
    assert reply.terminal
    assert not reply.failed
    raise_for(reply)  # success raises nothing


def test_an_unknown_result_type_stays_untyped_and_terminal_unless_progress() -> None:
    assert parse_reply(_result("SomethingNew", {"x": 1})).result is None
    assert parse_reply(_result("SomethingNew", {})).terminal
    assert not parse_reply(_result("SomethingNewProgress", {})).terminal


def test_progress_is_not_terminal() -> None:
    data = {"optimization_id": "o", "program_id": "qa", "step": 1, "total": 3}
    assert not parse_reply(_result("OptimizationProgress", data)).terminal


def test_rejection_and_failure_raise_with_their_details() -> None:
    rejected = parse_reply(
        _result(
            "CommandRejected",
            {
                "command_type": "DeployProgram",
                "errors": [{"loc": ["status"], "msg": "cannot deploy", "type": "illegal"}],
            },
        )
    )
    with pytest.raises(CommandRejectedError, match="DeployProgram rejected: status: cannot deploy"):
        raise_for(rejected)
    failed = parse_reply(
        _result(
            "ExecutionFailed",
            {
                "execution_id": "e1",
                "program_id": "qa",
                "version": 1,
                "error": {"code": "lm_timeout", "message": "too slow"},
            },
        )
    )
    with pytest.raises(CommandFailedError, match="lm_timeout: too slow") as caught:
        raise_for(failed)
    assert caught.value.error.code == "lm_timeout"


def test_expect_names_what_came_instead() -> None:
    from dspyops.events.results import ProgramDeployed

    reply = parse_reply(_result("ExecutionSucceeded", SUCCEEDED))
    with pytest.raises(TypeError, match="expected ProgramDeployed, got ExecutionSucceeded"):
        reply.expect(ProgramDeployed)


@pytest.mark.parametrize(
    ("command_type", "data", "key"),
    [
        ("ExecuteProgram", {"program_id": "qa", "inputs": {}}, "cmd"),
        ("ExecuteProgram", {"program_id": "qa", "inputs": {}, "execution_id": "e9"}, "e9"),
        ("DeployProgram", {"program_id": "qa", "version": 2}, "qa"),
        ("RegisterDataset", {"dataset_id": "ds", "name": "n"}, "ds"),
        ("RegisterProgram", {"name": "n", "signature": "a -> b"}, "cmd"),
        ("OptimizeProgram", {"program_id": "qa", "dataset_id": "ds"}, "qa"),
    ],
)
def test_record_keys_follow_the_contract(command_type: str, data: dict, key: str) -> None:
    assert record_key(command_envelope(command_type, data, id="cmd")) == key.encode()
