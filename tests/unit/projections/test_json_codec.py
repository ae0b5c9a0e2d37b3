"""The projector's event decoding (orjson) gives exactly what eventsourcing's own
JSONTranscoder gives, for every kind of value a stored event holds; its jsonb values
(orjson) are the documents `json.dumps` writes, or are written by it."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from dspyops.projections.json_codec import FastJSONTranscoder, dumps_jsonb, loads


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    slow, fast = JSONTranscoder(), FastJSONTranscoder()
    for transcoder in (slow, fast):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return slow, fast


STATES: list[Any] = [
    {
        "timestamp": datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC),
        "originator_id": uuid4(),
        "inputs": {"question": "q\u00e9\u4e2d", "context": "c", "n": [1, 2.5, -3e-7, None, True]},
        "trace": {"steps": [{"id": uuid4(), "at": datetime(2026, 1, 1, tzinfo=UTC)}]},
        "cost": Decimal("0.0015"),
    },
    # An object that looks like a transcoded value but is not one: kept as it is.
    {"data": {"_type_": "uuid_hex", "_data_": "x", "other": 1}, "just_type": {"_type_": 1}},
    # Past 64 bits: orjson alone would read a float.
    {"big": 123456789012345678901234567890, "neg": -(2**70)},
    # Floats the standard encoder writes as NaN and Infinity (orjson refuses those).
    {"nan": math.nan, "inf": math.inf},
    [],
    {},
]


@pytest.mark.parametrize("state", STATES)
def test_decodes_to_what_the_json_transcoder_gives(state: Any) -> None:
    slow, fast = transcoders()
    data = slow.encode(state)
    expected, got = slow.decode(data), fast.decode(data)
    assert repr(got) == repr(expected)
    assert type(got) is type(expected)


def test_an_unknown_transcoding_is_refused_as_eventsourcing_refuses_it() -> None:
    slow, fast = transcoders()
    data = b'{"x": {"_type_": "no_such", "_data_": 1}}'
    for transcoder in (slow, fast):
        with pytest.raises(TranscodingNotRegisteredError):
            transcoder.decode(data)


@pytest.mark.parametrize(
    "document",
    [
        b'{"question": "q1", "confidence": 0.5, "n": [1, 2.25, -3e-7]}',
        b'{"nested": {"a": null, "b": true, "c": "\\u00e9\\u4e2d"}, "empty": {}}',
        b'{"big": 123456789012345678901234567890, "neg": -99999999999999999999}',
        b'["\\ud800"]',
        b"[1e400]",
    ],
)
def test_loads_reads_what_the_standard_library_reads(document: bytes) -> None:
    assert repr(loads(document)) == repr(json.loads(document))


def test_big_integers_stay_integers() -> None:
    assert loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]
    assert type(loads(b"[123456789012345678901234567890]")[0]) is int


@pytest.mark.parametrize(
    "value",
    [
        {"answer": "a\u00e9\u4e2d", "confidence": 0.5, "n": [1, 2.25, -3e-7, True, False]},
        {"nested": {"deep": [{"x": "y"}]}, "empty": {}, "list": []},
        ["a", 1, 2.5],
        "a string",
        12,
    ],
)
def test_dumps_jsonb_writes_the_document_json_writes(value: Any) -> None:
    written = dumps_jsonb(value)
    assert isinstance(written, str)
    assert json.loads(written) == json.loads(json.dumps(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        # orjson would write null for these; json writes NaN/Infinity, which jsonb refuses.
        {"score": math.nan},
        [math.inf, None],
        # orjson refuses these; json writes them.
        {"big": 123456789012345678901234567890},
        {1: "integer key"},
        ["\ud800"],
        # A None: written by json, as any document with a null.
        {"label": None},
    ],
)
def test_dumps_jsonb_leaves_to_json_what_orjson_may_write_otherwise(value: Any) -> None:
    assert dumps_jsonb(value) == json.dumps(value)


@pytest.mark.parametrize("value", [{"at": datetime(2026, 1, 1, tzinfo=UTC)}, {"d": Decimal(1)}])
def test_dumps_jsonb_refuses_what_json_refuses(value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        dumps_jsonb(value)
