"""Dead letters: what an operator sees of a record nobody could decode."""

from __future__ import annotations

import base64
import json

import pytest

from dspyops.events.codec import Undecodable, decode_envelope, encode
from dspyops.events.deadletter import (
    DEADLETTER_TYPE,
    MAX_QUOTED_PAYLOAD_BYTES,
    Undeliverable,
    deadletter_envelope,
)


def _letter(raw: bytes | None, key: bytes | None = b"qa", offset: int = 7, **kw: str):
    try:
        decode_envelope(raw)
    except Undecodable as exc:
        error = exc
    else:
        pytest.fail("expected the record to be undecodable")
    env = deadletter_envelope(
        raw,
        key=key,
        topic=kw.get("topic", "dspyops.commands.programs"),
        partition=2,
        offset=offset,
        error=error,
    )
    return env, Undeliverable.model_validate(env.data)


def test_text_payload_is_quoted_as_text():
    env, data = _letter(b"hello", key=b"qa")
    assert env.type == DEADLETTER_TYPE
    assert (data.topic, data.partition, data.offset) == ("dspyops.commands.programs", 2, 7)
    assert (data.key, data.key_base64) == ("qa", False)
    assert (data.payload, data.payload_base64, data.payload_bytes) == ("hello", False, 5)
    assert data.truncated is False
    assert data.error.code == "not_json"


def test_non_utf8_bytes_are_base64():
    raw = b"\xff\xfe\x00binary\x80"
    _, data = _letter(raw, key=b"\xc3\x28")
    assert data.payload_base64 is True
    assert data.payload is not None
    assert base64.b64decode(data.payload) == raw
    assert data.key_base64 is True
    assert data.key is not None
    assert base64.b64decode(data.key) == b"\xc3\x28"
    assert data.error.code == "not_json"


def test_large_payload_is_cut_at_64_kib():
    raw = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    env, data = _letter(raw)
    assert data.error.code == "too_large"
    assert data.truncated is True
    assert data.payload_bytes == len(raw)
    assert data.payload is not None
    assert len(data.payload.encode()) == MAX_QUOTED_PAYLOAD_BYTES
    assert len(encode(env)) < 100 * 1024


def test_cut_inside_a_character_stays_text():
    raw = b"[" + "é".encode() * MAX_QUOTED_PAYLOAD_BYTES
    _, data = _letter(raw)
    assert data.payload_base64 is False
    assert data.truncated is True
    assert data.payload is not None
    assert data.payload.startswith("[éé")
    assert len(data.payload.encode()) in (MAX_QUOTED_PAYLOAD_BYTES, MAX_QUOTED_PAYLOAD_BYTES - 1)


def test_tombstone_without_key():
    _, data = _letter(None, key=None)
    assert (data.key, data.payload, data.payload_bytes) == (None, None, 0)


def test_id_depends_only_on_the_record_position():
    first, _ = _letter(b"junk", offset=9)
    again, _ = _letter(b"other junk", offset=9)
    other, _ = _letter(b"junk", offset=10)
    elsewhere, _ = _letter(b"junk", offset=9, topic="dspyops.commands.executions")
    assert first.id == again.id
    assert len({first.id, other.id, elsewhere.id}) == 3


def test_dead_letter_survives_the_codec():
    env, _ = _letter(b'{"id": "x", "type": "dspyops.command.Nope"}')
    back = decode_envelope(encode(env), commands_only=False)
    assert back == env
    assert json.loads(encode(env))["data"]["error"]["code"] == "unknown_type"
