"""`dspyops alias` and `dspyops split`: SetAlias, RemoveAlias and SetTrafficSplit built from
arguments, checked against the contract before anything is sent, published like `send`'s."""

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
    return CliRunner().invoke(app, list(args))


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_alias_sets_with_a_reason_and_the_shared_options(
    published: list[tuple[Any, ...]],
) -> None:
    result = run(
        "alias", "qa", "canary", "3", "--reason", "try v3", "--id", "c-1", "--actor", "erin",
        "--timeout", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((name, payload, command_id, correlation_id, actor, timeout, no_wait, json_out),) = published
    assert name == "SetAlias"
    assert payload == {"program_id": "qa", "alias": "canary", "version": 3, "reason": "try v3"}
    assert (command_id, correlation_id, actor, timeout, no_wait, json_out) == (
        "c-1", None, "erin", 5.0, False, False,
    )  # fmt: skip


def test_alias_remove(published: list[tuple[Any, ...]]) -> None:
    result = run("alias", "qa", "canary", "--remove", "--json")
    assert result.exit_code == 0, result.output
    ((name, payload, *_, json_out),) = published
    assert (name, payload, json_out) == (
        "RemoveAlias", {"program_id": "qa", "alias": "canary"}, True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["canary"], "give the VERSION to point the alias at, or --remove"),
        (["canary", "3", "--remove"], "or --remove, not both"),
        (["Canary", "3"], "SetAlias: alias: String should match pattern"),
        (["canary", "0"], "SetAlias: version: Input should be greater than or equal to 1"),
    ],
)
def test_alias_refuses_bad_arguments_before_sending(
    published: list[tuple[Any, ...]], args: list[str], says: str
) -> None:
    result = run("alias", "qa", *args)
    assert result.exit_code == EXIT_USAGE
    assert says in one_line(result.stderr)
    assert published == []


def test_split_weights_guard_and_reason(published: list[tuple[Any, ...]]) -> None:
    result = run(
        "split", "qa", "2=90", "3=10", "--max-error-rate", "0.2", "--window", "20",
        "--reason", "canary v3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((name, payload, *_),) = published
    assert name == "SetTrafficSplit"
    assert payload == {
        "program_id": "qa",
        "alias": "production",
        "weights": {"2": 90, "3": 10},
        "guard": {"max_error_rate": 0.2, "window": 20},
        "reason": "canary v3",
    }


def test_split_of_another_alias_and_a_guard_with_the_default_window(
    published: list[tuple[Any, ...]],
) -> None:
    result = run("split", "qa", "3=50", "04=50", "--alias", "staging", "--max-error-rate", "0.1")
    assert result.exit_code == 0, result.output
    ((_, payload, *_),) = published
    assert payload == {
        "program_id": "qa",
        "alias": "staging",
        "weights": {"3": 50, "4": 50},
        "guard": {"max_error_rate": 0.1},
    }


def test_one_version_at_100_is_sent_as_it_is(published: list[tuple[Any, ...]]) -> None:
    # Ending a split: the worker knows whether 2 is the alias's version.
    result = run("split", "qa", "2=100")
    assert result.exit_code == 0, result.output
    ((_, payload, *_),) = published
    assert payload == {"program_id": "qa", "alias": "production", "weights": {"2": 100}}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["2=abc"], "'2=abc': 'abc' is not a whole percent (1..100)"),
        (["2=-5"], "'2=-5': '-5' is not a whole percent (1..100)"),
        (["2:90"], "'2:90' is not VERSION=PERCENT hint: e.g. 2=90 3=10"),
        (["x=90", "3=10"], "'x=90': 'x' is not a version number"),
        (["0=100"], "'0=100': '0' is not a version number"),
        (["²=100"], "'²=100': '²' is not a version number"),
        (["2=90", "02=10"], "version 2 is given twice"),
        (["2=0", "3=100"], "SetTrafficSplit: weights.2: Input should be greater than or equal"),
        (["2=101"], "SetTrafficSplit: weights.2: Input should be less than or equal to 100"),
        (["2=100", "--window", "10"], "--window needs --max-error-rate"),
        (["2=90", "3=10", "--max-error-rate", "1"], "guard.max_error_rate: Input should be less"),
        (["2=90", "3=10", "--max-error-rate", "0.1", "--window", "4"], "guard.window"),
        (["2=90", "3=10", "--alias", "Prod"], "SetTrafficSplit: alias: String should match"),
    ],
)
def test_split_refuses_bad_arguments_in_one_line_before_sending(
    published: list[tuple[Any, ...]], args: list[str], says: str
) -> None:
    result = run("split", "qa", *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert says in one_line(result.stderr)
    assert published == []


def test_split_needs_weights(published: list[tuple[Any, ...]]) -> None:
    result = run("split", "qa")
    assert result.exit_code == EXIT_USAGE
    assert "Missing argument" in one_line(result.stderr)
    assert published == []
