"""`dspyops promote`: a PromoteExecutions of the ids given, or of those a read-API filter finds."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dspyops.cli import send_commands
from dspyops.cli.console import EXIT_USAGE
from dspyops.cli.main import app
from dspyops.cli.read_api import ReadApi


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(send_commands, "publish", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def queried(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def items(self: ReadApi, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
        calls.append((path, {"limit": limit, **params}))
        return [{"execution_id": f"e{i}"} for i in range(min(limit, 3))]

    monkeypatch.setattr(ReadApi, "items", items)
    return calls


def test_ids_given_are_sent(published: list[tuple[Any, ...]]) -> None:
    result = CliRunner().invoke(app, ["promote", "qa-set", "-e", "e1", "--execution", "e2"])
    assert result.exit_code == 0, result.output
    ((name, payload, *_),) = published
    assert name == "PromoteExecutions"
    assert payload == {"dataset_id": "qa-set", "execution_ids": ["e1", "e2"]}


def test_a_filter_is_a_read_api_query_whose_ids_are_sent(
    published: list[tuple[Any, ...]], queried: list[tuple[str, dict[str, Any]]]
) -> None:
    args = ["promote", "qa-set", "--program", "qa", "--version", "2", "--min-score", "0.8"]
    args += ["--since", "2026-01-01T00:00:00Z", "--limit", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ((path, params),) = queried
    assert path == "/programs/qa/executions"
    assert params == {
        "limit": 2,
        "status": "succeeded",
        "version": 2,
        "min_score": 0.8,
        "max_score": None,
        "since": "2026-01-01T00:00:00Z",
        "until": None,
    }
    ((_, payload, *_),) = published
    assert payload == {"dataset_id": "qa-set", "execution_ids": ["e0", "e1"]}


@pytest.mark.parametrize(
    "args",
    [
        ["promote", "qa-set"],
        ["promote", "qa-set", "-e", "e1", "--program", "qa", "--limit", "5"],
        ["promote", "qa-set", "-e", "e1", "--min-score", "0.5"],
        ["promote", "qa-set", "--program", "qa"],
        ["promote", "qa-set", "--program", "qa", "--limit", "10001"],
    ],
)
def test_ids_or_a_bounded_filter_are_needed(
    published: list[tuple[Any, ...]], queried: list[tuple[str, dict[str, Any]]], args: list[str]
) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert (published, queried) == ([], [])
