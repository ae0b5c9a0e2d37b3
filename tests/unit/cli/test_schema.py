"""`dspyops schema export` through typer's runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dspyops.cli.main import app
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.results import RESULT_TYPES

EXPECTED_FILES = len(COMMAND_TYPES) + len(RESULT_TYPES) + 3


def _flat(output: str) -> str:
    # rich wraps long lines at the terminal width; compare words, not line breaks.
    return " ".join(output.split())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_export_prints_what_it_wrote(runner, tmp_path):
    out = tmp_path / "schemas"
    result = runner.invoke(app, ["schema", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {EXPECTED_FILES} files to {out}" in _flat(result.output)
    assert (out / "asyncapi.json").is_file()
    assert (out / "commands" / "ExecuteProgram.json").is_file()


def test_export_json(runner, tmp_path):
    result = runner.invoke(app, ["schema", "export", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["count"] == EXPECTED_FILES == len(report["files"])
    assert report["dir"] == str(tmp_path)
    assert "results/ExecutionSucceeded.json" in report["files"]


def test_export_uses_the_topic_prefix(runner, tmp_path, monkeypatch):
    from dspyops.settings import get_settings

    monkeypatch.setenv("DSPYOPS_TOPIC_PREFIX", "acme.")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["schema", "export", str(tmp_path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "asyncapi.json").read_text())
    addresses = {c["address"] for c in document["channels"].values()}
    assert "acme.commands.executions" in addresses


def test_export_to_a_file_fails_with_a_hint(runner, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = runner.invoke(app, ["schema", "export", str(target)])
    assert result.exit_code == 1
    assert "exists and is not a folder" in _flat(result.output)
    assert "hint:" in result.output
    assert "Traceback" not in result.output


def test_export_below_a_file_fails_cleanly(runner, tmp_path):
    (tmp_path / "taken").write_text("x")
    result = runner.invoke(app, ["schema", "export", str(tmp_path / "taken" / "sub")])
    assert result.exit_code == 1
    assert "cannot write schemas" in _flat(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
