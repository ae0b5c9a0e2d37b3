"""The envelope codec against good input and hostile input."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspyops.events.codec import (
    MAX_MESSAGE_BYTES,
    InvalidCommand,
    Undecodable,
    decode_command,
    decode_envelope,
    encode,
    validation_errors,
)
from dspyops.events.commands import ExecuteProgram, RegisterProgram
from dspyops.events.envelope import Envelope, command_envelope, result_envelope


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _command(type_: str = "ExecuteProgram", **data: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": "cmd-1",
        "source": "urn:test",
        "type": f"dspyops.command.{type_}",
        "data": data or {"program_id": "qa", "inputs": {"question": "why?"}},
    }


def _code(raw: bytes | None, **kwargs: bool) -> str:
    with pytest.raises(Undecodable) as info:
        decode_envelope(raw, **kwargs)
    assert info.value.message
    return info.value.code


def test_round_trip_keeps_every_attribute():
    env = command_envelope(
        "ExecuteProgram",
        {"program_id": "qa", "inputs": {"question": "ça va?", "n": None}},
        subject="qa",
        actor="alice",
    )
    raw = encode(env)
    assert decode_envelope(raw) == env
    assert decode_command(decode_envelope(raw)) == ExecuteProgram(
        program_id="qa", inputs={"question": "ça va?", "n": None}
    )


def test_encode_is_compact_utf8_without_absent_attributes():
    env = Envelope(id="e1", type="dspyops.command.TrainProgram", data={"x": None, "y": "é"})
    raw = encode(env)
    assert b" " not in raw
    assert "é".encode() in raw
    obj = json.loads(raw)
    assert "subject" not in obj
    assert "causationid" not in obj
    assert "time" not in obj
    # None inside data is part of the payload and is kept.
    assert obj["data"] == {"x": None, "y": "é"}
    assert obj["correlationid"] == "e1"


def test_result_round_trip_when_not_restricted_to_commands():
    cmd = command_envelope("TrainProgram", {"program_id": "qa"})
    res = result_envelope(cmd, "ProgramTrainingStarted", {"program_id": "qa"}, subject="qa")
    assert decode_envelope(encode(res), commands_only=False) == res
    assert _code(encode(res)) == "unknown_type"


def test_extension_attributes_are_kept():
    obj = {**_command(), "traceparent": "00-abc-def-01"}
    env = decode_envelope(_raw(obj))
    assert json.loads(encode(env))["traceparent"] == "00-abc-def-01"


def test_too_large_is_checked_before_parsing():
    raw = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert _code(raw) == "too_large"
    assert _code(b"\xff" * (MAX_MESSAGE_BYTES + 1)) == "too_large"


def test_exactly_the_limit_is_accepted():
    base = len(_raw(_command()))
    padding = MAX_MESSAGE_BYTES - base - len(', "pad": ""')
    raw = _raw({**_command(), "pad": "x" * padding})
    assert len(raw) == MAX_MESSAGE_BYTES
    assert decode_envelope(raw).id == "cmd-1"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"\xff\xfe{}",
        b'{"id": "\xc3"}',
        b"\xef\xbb\xbf{}",
        b"[1, 2]",
        b'"a string"',
        b"42",
        b"null",
        b'{"id": NaN}',
        b'{"id": Infinity}',
        b'{"id": -Infinity}',
        b'{"id": 1e400}',
        b'{"id": ' + b"9" * 5000 + b"}",
        b'{"id": "a", "id": "b"}',
        b'{"a": 1',
    ],
)
def test_not_json(raw):
    assert _code(raw) == "not_json"


ENVELOPE_TEXT = ("id", "source", "type", "subject", "correlationid", "causationid", "actor")


@pytest.mark.parametrize("attribute", [*ENVELOPE_TEXT, "someextension"])
@pytest.mark.parametrize("bad", ["a\u0000b", "a\ud800b", "\udfff"])
def test_refused_text_in_an_envelope_attribute_dead_letters_it_by_name(attribute, bad):
    # Spelled as JSON escapes, as a producer in any language would send them.
    raw = json.dumps({**_command(), attribute: bad}).encode()
    with pytest.raises(Undecodable) as info:
        decode_envelope(raw)
    assert info.value.code == "not_envelope"
    assert info.value.message.startswith(f"{attribute}: text holds")
    # The reason can be published: it quotes nothing that cannot be encoded.
    info.value.message.encode("utf-8")


@pytest.mark.parametrize("bad", ["a\u0000b", "a\ud800b"])
def test_refused_text_anywhere_in_data_is_rejected_with_its_path(bad):
    data: dict[str, Any] = {
        "program_id": "qa",
        "inputs": {"question": "ok", "ctx": {"deep": ["x", bad]}},
    }
    envelope = decode_envelope(_raw(_command(**data)))
    with pytest.raises(InvalidCommand) as info:
        decode_command(envelope)
    (error,) = info.value.errors
    assert error.loc == ["data", "inputs", "ctx", "deep", 1]
    assert error.type == "invalid_text"


def test_a_refused_key_is_escaped_in_the_error_it_causes():
    data: dict[str, Any] = {"program_id": "qa", "inputs": {"bad\ud800key": 1}}
    with pytest.raises(InvalidCommand) as info:
        decode_command(decode_envelope(_raw(_command(**data))))
    locs = [e.loc for e in info.value.errors]
    assert ["data", "inputs", "bad\\ud800key"] in locs
    for error in info.value.errors:
        json.dumps(error.model_dump(), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("depth", [65, 1_000, 10_000, 100_000])
def test_deep_nesting_is_refused_cleanly(depth):
    assert _code(b"[" * depth + b"]" * depth) == "not_json"
    nested = b'{"id":"x","type":"t","data":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
    assert _code(nested) == "not_json"


def test_nesting_within_the_limit_is_accepted():
    inputs: object = 1
    for _ in range(60):
        inputs = [inputs]
    env = decode_envelope(_raw(_command(program_id="qa", inputs={"q": inputs})))
    assert env.data is not None


def test_huge_but_finite_numbers_parse():
    env = decode_envelope(_raw(_command(program_id="qa", inputs={"x": 1e308, "y": 10**4000})))
    assert env.data is not None
    assert env.data["inputs"]["y"] == 10**4000


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"id": "x"},
        {"type": "dspyops.command.TrainProgram"},
        {"id": "", "type": "dspyops.command.TrainProgram"},
        {"id": 5, "type": "dspyops.command.TrainProgram"},
        {"id": "x", "type": "dspyops.command.TrainProgram", "specversion": "0.3"},
        {"id": "x", "type": "dspyops.command.TrainProgram", "data": [1]},
        {"id": "x", "type": "dspyops.command.TrainProgram", "data": "text"},
        {"id": "x", "type": "dspyops.command.TrainProgram", "time": "yesterday"},
        {"id": "x" * 300, "type": "dspyops.command.TrainProgram"},
        {"id": "x", "type": "dspyops.command.TrainProgram", "datacontenttype": "text/xml"},
    ],
)
def test_not_envelope(obj):
    assert _code(_raw(obj)) == "not_envelope"


def test_not_envelope_summarises_the_errors():
    with pytest.raises(Undecodable) as info:
        decode_envelope(b"{}")
    assert "id: Field required" in info.value.message
    assert "type: Field required" in info.value.message


@pytest.mark.parametrize(
    "type_",
    [
        "dspyops.command.DropDatabase",
        "dspyops.result.ProgramRegistered",
        "ExecuteProgram",
        "dspyops.command.",
        "com.example.command.ExecuteProgram",
    ],
)
def test_unknown_type(type_):
    assert _code(_raw({**_command(), "type": type_})) == "unknown_type"


def test_invalid_command_errors_have_data_locations():
    env = decode_envelope(_raw(_command("DeployProgram", version=0)))
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    by_loc = {tuple(e.loc): e for e in info.value.errors}
    assert by_loc[("data", "program_id")].type == "missing"
    assert by_loc[("data", "version")].type == "greater_than_equal"
    assert "program_id" in str(info.value)


def test_unknown_fields_are_rejected():
    env = decode_envelope(_raw(_command("TrainProgram", program_id="qa", progam_id="qa")))
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    assert [(e.loc, e.type) for e in info.value.errors] == [
        (["data", "progam_id"], "extra_forbidden")
    ]


def test_nested_error_locations_keep_indexes():
    env = decode_envelope(
        _raw(_command("RegisterDataset", name="d", examples=[{"q": 1}, "not an object"]))
    )
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    assert info.value.errors[0].loc == ["data", "examples", 1]


def test_command_without_data_is_invalid():
    env = decode_envelope(_raw({"id": "x", "type": "dspyops.command.TrainProgram"}))
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    assert [(e.loc, e.type) for e in info.value.errors] == [(["data"], "missing")]


def test_decode_command_refuses_a_non_command_envelope():
    env = Envelope(id="x", type="dspyops.result.ProgramRegistered", data={})
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    assert info.value.errors[0].loc == ["type"]
    assert info.value.errors[0].type == "unknown_type"


def test_model_validators_become_error_items():
    env = decode_envelope(_raw(_command("UpdateProgram", program_id="qa")))
    with pytest.raises(InvalidCommand) as info:
        decode_command(env)
    assert info.value.errors[0].loc == ["data"]
    assert "description, instructions or both" in info.value.errors[0].msg


def test_validation_errors_prefix_and_no_input_echo():
    with pytest.raises(pydantic.ValidationError) as info:
        RegisterProgram.model_validate({"name": "", "signature": "x" * 20_000})
    items = validation_errors(info.value, prefix=("body",))
    assert {tuple(i.loc) for i in items} == {("body", "name"), ("body", "signature")}
    assert all(len(i.model_dump_json()) < 500 for i in items)
    assert validation_errors(info.value)[0].loc[0] == "data"


# ---- fuzz: whatever arrives, the codec answers with an envelope or Undecodable -------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def _decodes_or_refuses(raw: bytes) -> None:
    code = errors = None
    try:
        env = decode_envelope(raw, commands_only=False)
    except Undecodable as exc:
        code = exc.code
    if code is not None:
        assert code in {"too_large", "not_json", "not_envelope", "unknown_type"}
        return
    try:
        decode_command(env)
    except InvalidCommand as exc:
        errors = exc.errors
    assert errors is None or len(errors) > 0
    encode(env)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes(raw):
    _decodes_or_refuses(raw)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(max_size=5) | st.integers(),
            "type": st.sampled_from(["dspyops.command.ExecuteProgram", "x"]) | st.text(),
            "data": _json_values,
            "time": st.text(max_size=30),
            "specversion": st.just("1.0"),
        },
    ).flatmap(lambda d: st.dictionaries(st.text(), _json_values, max_size=3).map(d.__or__))
)
def test_fuzz_envelopes(obj):
    _decodes_or_refuses(json.dumps(obj).encode())


@pytest.mark.parametrize(
    "time", [5, 1.5, True, "5", "2026-01-31", "2026-01-31T12:00:00", "31/01/2026 12:00"]
)
def test_a_time_that_is_not_rfc3339_dead_letters_the_envelope(time):
    assert _code(_raw({**_command(), "time": time})) == "not_envelope"


@pytest.mark.parametrize(
    "time",
    [
        "2026-01-31T12:00:00Z",
        "2026-01-31t12:00:00.123456789+02:00",
        "2026-01-31T12:00:00.5-05:30",
        "2026-01-31t12:00:00z",
        "2016-12-31T23:59:60Z",
    ],
)
def test_rfc3339_times_are_read(time):
    assert decode_envelope(_raw({**_command(), "time": time})).time is not None


@pytest.mark.parametrize(
    ("type_", "data", "loc"),
    [
        ("ExecuteProgram", {"program_id": "p", "inputs": {}, "version": True}, "version"),
        ("ExecuteProgram", {"program_id": "p", "inputs": {}, "version": "1"}, "version"),
        ("ExecuteProgram", {"program_id": "p", "inputs": {}, "version": 1.0}, "version"),
        ("RegisterDataset", {"name": "d", "dev_fraction": "0.5"}, "dev_fraction"),
        ("RegisterDataset", {"name": "d", "dev_fraction": False}, "dev_fraction"),
        ("DeployProgram", {"program_id": "p", "version": "2"}, "version"),
        ("RegisterProgram", {"name": 5, "signature": "a: str -> b: str"}, "name"),
    ],
)
def test_wire_models_take_no_lax_values(type_, data, loc):
    with pytest.raises(InvalidCommand) as info:
        decode_command(decode_envelope(_raw(_command(type_, **data))))
    assert [e.loc for e in info.value.errors] == [["data", loc]]


def test_an_integer_is_a_valid_float():
    command = decode_command(
        decode_envelope(_raw(_command("RegisterDataset", name="d", dev_fraction=0)))
    )
    assert command.dev_fraction == 0.0  # type: ignore[attr-defined]
