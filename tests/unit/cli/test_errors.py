"""CLI errors: one clear line, a hint, and an exit code a script can tell apart."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from dspyops.cli.console import EXIT_UNAVAILABLE, EXIT_USAGE
from dspyops.cli.main import app
from dspyops.settings import get_settings


def _flat(text: str) -> str:
    # rich wraps long lines at the terminal width; compare words, not line breaks.
    return " ".join(text.split())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def nothing_running(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Kafka and the API pointed at a port where nothing listens."""
    port = _free_port()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    monkeypatch.setenv("DSPYOPS_API_PORT", str(port))
    get_settings.cache_clear()
    yield port
    get_settings.cache_clear()


def test_send_unknown_command_type_lists_the_known_ones(runner, tmp_path) -> None:
    data = tmp_path / "data.json"
    data.write_text("{}")
    result = runner.invoke(app, ["send", "LaunchRocket", "--data", str(data)])
    assert result.exit_code == EXIT_USAGE
    text = _flat(result.stderr)
    assert "error: unknown command type 'LaunchRocket'" in text
    assert "hint: one of: RegisterProgram, UpdateProgram" in text


def test_send_missing_file(runner, tmp_path) -> None:
    missing = tmp_path / "nope.json"
    result = runner.invoke(app, ["send", "RegisterProgram", "--data", str(missing)])
    assert result.exit_code == EXIT_USAGE
    text = _flat(result.stderr)
    assert f"error: cannot read {missing}: No such file or directory" in text
    assert "hint: pass a JSON file, or - to read stdin" in text


def test_send_file_that_is_not_json(runner, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "qa",\n')
    result = runner.invoke(app, ["send", "RegisterProgram", "--data", str(bad)])
    assert result.exit_code == EXIT_USAGE
    assert f"error: {bad} is not JSON: Expecting property name" in _flat(result.stderr)


def test_send_stdin_that_is_not_an_object(runner) -> None:
    result = runner.invoke(app, ["send", "TrainProgram", "--data", "-"], input="[1, 2]")
    assert result.exit_code == EXIT_USAGE
    assert "error: stdin holds list, not a JSON object" in _flat(result.stderr)


def test_send_when_the_stack_is_not_running(runner, nothing_running) -> None:
    result = runner.invoke(
        app, ["send", "TrainProgram", "--data", "-"], input='{"program_id": "qa"}'
    )
    assert result.exit_code == EXIT_UNAVAILABLE
    text = _flat(result.stderr)
    assert f"error: Kafka at 127.0.0.1:{nothing_running} does not answer" in text
    assert "hint: start the stack with `dspyops dev`" in text
    assert len(result.stderr.strip().splitlines()) <= 4  # a message, not a traceback


def test_watch_when_the_stack_is_not_running(runner, nothing_running) -> None:
    result = runner.invoke(app, ["watch", "--max", "1"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "does not answer" in _flat(result.stderr)


@pytest.mark.parametrize("command", [["programs"], ["executions", "qa"]])
def test_read_commands_when_the_api_is_not_running(runner, nothing_running, command) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_UNAVAILABLE
    text = _flat(result.stderr)
    assert f"error: the API at http://127.0.0.1:{nothing_running} does not answer" in text
    assert "hint: start the stack with `dspyops dev`" in text


def test_read_commands_take_an_api_url(runner) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = runner.invoke(app, ["programs", "--api", url, "--json"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert f"the API at {url} does not answer" in _flat(result.stderr)
    assert result.stdout == ""  # nothing half-written for a script to parse
