"""`dspyops serving PROGRAM`: what served at an instant as a table (or JSON), and with
--history every change; all of it read from the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from dspyops.cli.main import app
from dspyops.cli.read_api import ReadApi

CHANGE: dict[str, Any] = {
    "position": 9,
    "kind": "AliasSet",
    "alias": "canary",
    "previous_version": None,
    "version": 3,
    "state": {"aliases": {"production": 2, "canary": 3}, "splits": {}},
    "reason": "try v3",
    "actor": "frank",
    "command_id": "c-9",
    "correlation_id": "corr-9",
    "occurred_at": "2026-05-01T12:00:00Z",
}
SERVING: dict[str, Any] = {
    "program_id": "qa",
    "at": "2026-05-02T00:00:00Z",
    "aliases": {"production": 2, "canary": 3},
    "splits": {"canary": {"3": 20.0, "2": 80.0}},
    "weights": {"production": {"2": 100.0}, "canary": {"3": 20.0, "2": 80.0}},
    "change": CHANGE,
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {"answer": SERVING}

    def get(self: ReadApi, path: str, **params: Any) -> Any:
        calls["get"] = (path, params)
        return calls["answer"]

    def items(self: ReadApi, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
        calls["items"] = (path, limit)
        return [CHANGE]

    monkeypatch.setattr(ReadApi, "get", get)
    monkeypatch.setattr(ReadApi, "items", items)
    return calls


def test_a_table_of_aliases_versions_and_weights(api: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["serving", "qa", "--at", "2026-05-02T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert api["get"] == ("/programs/qa/serving", {"at": "2026-05-02T00:00:00Z"})
    assert "since 2026-05-01T12:00:00Z AliasSet canary -> v3 by frank (command c-9)" in (
        result.output
    )
    lines = result.output.splitlines()
    assert any("canary" in line and "v3 20%, v2 80%" in line for line in lines), result.output
    assert any("production" in line and "v2 100%" in line for line in lines), result.output


def test_nothing_served_yet_is_said(api: dict[str, Any]) -> None:
    api["answer"] = {**SERVING, "aliases": {}, "splits": {}, "weights": {}, "change": None}
    result = CliRunner().invoke(app, ["serving", "qa"])
    assert result.exit_code == 0, result.output
    assert api["get"] == ("/programs/qa/serving", {"at": None})
    assert "nothing had served yet" in result.output
    assert "no version serving" in result.output


def test_json_is_the_apis_answer(api: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["serving", "qa", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == SERVING


def test_history_lists_every_change_with_actor_and_command(api: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["serving", "qa", "--history", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert api["items"] == ("/programs/qa/serving/history", 5)
    (row,) = [line for line in result.output.splitlines() if "AliasSet" in line]
    for cell in ("canary", "frank", "try v3", "c-9"):
        assert cell in row, row
