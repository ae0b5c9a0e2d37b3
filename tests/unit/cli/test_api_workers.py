"""`dspyops api` runs DSPYOPS_API_WORKERS uvicorn processes; `--workers` overrides it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from dspyops.cli import api_commands
from dspyops.cli.main import app
from dspyops.settings import get_settings


@pytest.fixture
def uvicorn_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    called: dict[str, Any] = {}
    monkeypatch.setattr(api_commands.uvicorn, "run", lambda *a, **kw: called.update(kw))
    get_settings.cache_clear()
    yield called
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("env", "args", "workers"),
    [(None, [], 1), ("3", [], 3), ("3", ["--workers", "2"], 2)],
)
def test_workers_come_from_the_setting_unless_given(
    uvicorn_run: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    args: list[str],
    workers: int,
) -> None:
    if env is None:
        monkeypatch.delenv("DSPYOPS_API_WORKERS", raising=False)
    else:
        monkeypatch.setenv("DSPYOPS_API_WORKERS", env)
    result = CliRunner().invoke(app, ["api", *args])
    assert result.exit_code == 0, result.output
    assert uvicorn_run["workers"] == workers
