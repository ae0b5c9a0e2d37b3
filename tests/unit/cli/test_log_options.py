"""`--log-format` and `--log-level` reach the projector's and the API's logging too."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from typer.testing import CliRunner

from dspyops.cli import api_commands
from dspyops.cli.log_options import configure
from dspyops.cli.main import app


@pytest.fixture
def restore_logging() -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_from_a_configured_process(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("json", "warn")
    logging.getLogger("dspyops.projector").info("below the level")
    logging.getLogger("dspyops.projector").warning("projector: database unavailable")
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("warning", "dspyops.projector")
    assert record["message"] == "projector: database unavailable"


def test_the_api_hands_uvicorn_the_same_logging_config(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: dict[str, Any] = {}
    monkeypatch.setattr(api_commands.uvicorn, "run", lambda *a, **kw: called.update(kw))
    result = CliRunner().invoke(app, ["api", "--log-format", "json", "--log-level", "debug"])
    assert result.exit_code == 0, result.output
    config = called["log_config"]
    assert config["root"]["level"] == "DEBUG"
    assert config["formatters"]["dspyops"]["()"].__name__ == "JsonFormatter"


def test_an_unknown_format_is_refused_in_one_line() -> None:
    result = CliRunner().invoke(app, ["projector", "--log-format", "xml"])
    assert result.exit_code != 0
    assert "--log-format must be json or console" in result.output
