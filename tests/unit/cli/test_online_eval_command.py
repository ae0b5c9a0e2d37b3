"""`dspyops online-eval`: SetOnlineEvaluation built from arguments, checked against the
contract before anything is sent, published like `send`'s."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dspyops.cli import send_commands
from dspyops.cli.console import EXIT_USAGE
from dspyops.cli.main import app


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(send_commands, "publish", lambda *args: calls.append(args))
    return calls


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["online-eval", *args])


def test_judge_sample_reason_and_the_shared_options(published: list[tuple[Any, ...]]) -> None:
    result = run(
        "qa", "--judge", "grader@production", "--sample-percent", "25", "--reason", "watch v3",
        "--id", "c-1", "--actor", "erin", "--timeout", "5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((name, payload, command_id, correlation_id, actor, timeout, no_wait, json_out),) = published
    assert name == "SetOnlineEvaluation"
    assert payload == {
        "program_id": "qa",
        "judge": "grader@production",
        "sample_percent": 25.0,
        "reason": "watch v3",
    }
    assert (command_id, correlation_id, actor, timeout, no_wait, json_out) == (
        "c-1", None, "erin", 5.0, False, True,
    )  # fmt: skip


def test_the_sample_defaults_to_the_contracts(published: list[tuple[Any, ...]]) -> None:
    assert run("qa", "--judge", "grader").exit_code == 0
    ((_, payload, *_),) = published
    assert payload == {"program_id": "qa", "judge": "grader"}  # the worker's default: 10 %


def test_stop(published: list[tuple[Any, ...]]) -> None:
    assert run("qa", "--stop").exit_code == 0
    ((name, payload, *_),) = published
    assert (name, payload) == ("SetOnlineEvaluation", {"program_id": "qa", "judge": None})


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give the --judge program, or --stop"),
        (["--sample-percent", "5"], "give the --judge program, or --stop"),
        (["--judge", "g", "--stop"], "or --stop, not both"),
        (["--judge", "g", "--sample-percent", "0"], "sample_percent: Input should be greater"),
        (["--judge", "g", "--sample-percent", "101"], "sample_percent: Input should be less"),
        (["--judge", "g@Prod"], "SetOnlineEvaluation: judge: String should match pattern"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_sending(
    published: list[tuple[Any, ...]], args: list[str], says: str
) -> None:
    result = run("qa", *args)
    assert result.exit_code == EXIT_USAGE
    assert says in " ".join(result.stderr.split())
    assert published == []
