"""docs/contract.md stays true to the code: every example decodes, every type is listed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dspyops.events.codec import MAX_MESSAGE_BYTES, InvalidCommand, decode_command, decode_envelope
from dspyops.events.commands import COMMAND_TYPES
from dspyops.events.deadletter import DEADLETTER_TYPE, Undeliverable
from dspyops.events.envelope import COMMAND_TYPE_PREFIX, RESULT_TYPE_PREFIX
from dspyops.events.results import RESULT_TYPES
from dspyops.events.topics import Topics

DOC = Path(__file__).resolve().parents[3] / "docs" / "contract.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES: list[dict[str, Any]] = [
    json.loads(block) for block in re.findall(r"```json\n(.*?)```", TEXT, flags=re.DOTALL)
]


def _types(prefix: str) -> list[str]:
    return [e["type"].removeprefix(prefix) for e in EXAMPLES if e["type"].startswith(prefix)]


def test_every_command_has_an_example():
    # A command may have more than one (DeployProgram: with and without a gate).
    assert set(_types(COMMAND_TYPE_PREFIX)) == set(COMMAND_TYPES)


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e["type"].startswith(COMMAND_TYPE_PREFIX)],
    ids=lambda e: e["type"],
)
def test_command_examples_decode(example):
    envelope = decode_envelope(json.dumps(example).encode())
    decode_command(envelope)


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if not e["type"].startswith(COMMAND_TYPE_PREFIX)],
    ids=lambda e: e["type"],
)
def test_other_examples_validate(example):
    envelope = decode_envelope(json.dumps(example).encode(), commands_only=False)
    if envelope.type == DEADLETTER_TYPE:
        Undeliverable.model_validate(envelope.data)
    else:
        RESULT_TYPES[envelope.type.removeprefix(RESULT_TYPE_PREFIX)].model_validate(envelope.data)


def test_rejection_example_is_what_the_codec_produces():
    # The documented rejection is the answer to DeployProgram {progam_id: qa, version: 2}.
    (rejected,) = [e for e in EXAMPLES if e["type"].endswith(".CommandRejected")]
    command = {
        "id": "c",
        "type": "dspyops.command.DeployProgram",
        "data": {"progam_id": "qa", "version": 2},
    }
    with pytest.raises(InvalidCommand) as info:
        decode_command(decode_envelope(json.dumps(command).encode()))
    assert [e.model_dump() for e in info.value.errors] == rejected["data"]["errors"]


def test_every_result_is_in_the_table():
    rows = set(re.findall(r"^\| `(\w+)` \| (?:yes|\*\*no\*\*) \|", TEXT, flags=re.MULTILINE))
    assert rows == set(RESULT_TYPES)
    for name, cls in RESULT_TYPES.items():
        row = re.search(rf"^\| `{name}` \| (yes|\*\*no\*\*) \|", TEXT, flags=re.MULTILINE)
        assert row is not None
        assert (row.group(1) == "yes") is cls.terminal, name


def test_every_topic_and_limit_is_named():
    for topic in Topics().all:
        assert f"`{topic}`" in TEXT
    assert f"{MAX_MESSAGE_BYTES:,}" in TEXT
    for code in ("too_large", "not_json", "not_envelope", "unknown_type"):
        assert f"`{code}`" in TEXT
    for field in Undeliverable.model_fields:
        assert f"`{field}`" in TEXT
