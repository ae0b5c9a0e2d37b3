"""`dspyops feedback`: a RecordFeedback built from options, published like `send`'s."""

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


def test_the_options_make_the_payload(published: list[tuple[Any, ...]]) -> None:
    result = CliRunner().invoke(
        app,
        [
            "feedback",
            "exec-1",
            "--score",
            "0.8",
            "--label",
            "good",
            "--corrected",
            '{"answer": "Paris"}',
            "--actor",
            "erin",
        ],
    )
    assert result.exit_code == 0, result.output
    ((name, payload, _id, _corr, actor, *_),) = published
    assert (name, actor) == ("RecordFeedback", "erin")
    assert payload == {
        "execution_id": "exec-1",
        "score": 0.8,
        "label": "good",
        "corrected_outputs": {"answer": "Paris"},
    }


@pytest.mark.parametrize(
    ("corrected", "says"), [("{nope", "not JSON"), ("[1]", "not a JSON object")]
)
def test_corrected_outputs_must_be_a_json_object(
    published: list[tuple[Any, ...]], corrected: str, says: str
) -> None:
    result = CliRunner().invoke(app, ["feedback", "exec-1", "--corrected", corrected])
    assert result.exit_code == EXIT_USAGE
    assert says in " ".join(result.stderr.split())
    assert published == []
