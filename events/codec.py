"""Bytes <-> envelopes: the one codec the worker, the CLI and the tests share.

Decoding is the first thing hostile input meets, so it never raises anything but
`Undecodable` (the message goes to the dead-letter topic) or `InvalidCommand` (the
command is answered with `CommandRejected`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import pydantic

from dspyops.events.commands import COMMAND_TYPES, Command
from dspyops.events.envelope import COMMAND_TYPE_PREFIX, Envelope
from dspyops.events.results import ErrorItem
from dspyops.events.text import printable, refused_text

MAX_MESSAGE_BYTES = 1_048_576
# Deep enough for any real payload, shallow enough that nothing downstream recurses far.
MAX_JSON_DEPTH = 64
# Summaries of pydantic errors quote at most this many, so a dead letter stays small.
_MAX_SUMMARISED_ERRORS = 5

# `unpublishable`: not a command's fault but a result's, which Kafka refused for good
# (exactly-once results' relay, consumers/result_relay.py).
UndecodableCode = Literal["too_large", "not_json", "not_envelope", "unknown_type", "unpublishable"]


class Undecodable(Exception):
    """The bytes are not a dspyops envelope we can act on; `code` is machine-readable."""

    def __init__(self, code: UndecodableCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: UndecodableCode = code
        self.message = message


class InvalidCommand(Exception):
    """A well-formed command envelope whose `data` does not fit the command's model."""

    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__("; ".join(_describe(e.loc, e.msg) for e in errors))
        self.errors = errors


def encode(envelope: Envelope) -> bytes:
    """Compact UTF-8 JSON; absent envelope attributes are left out (`data` is kept as is)."""
    return envelope.model_dump_json(exclude_none=True).encode("utf-8")


def decode_envelope(raw: bytes | None, *, commands_only: bool = True) -> Envelope:
    """Parse one Kafka record value into an envelope.

    With `commands_only` (the default, for command topics) the type must be
    `dspyops.command.<a known command>`.
    """
    obj = _parse_json_object(raw)
    # Text the envelope itself holds (id, actor, ...) must be storable: a reply would
    # repeat it, so an envelope that holds refused text cannot be answered.
    attributes = {k: v for k, v in obj.items() if k != "data"}
    for path, problem in refused_text(attributes):
        raise Undecodable("not_envelope", _describe(path, problem))
    try:
        envelope = Envelope.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise Undecodable("not_envelope", _summarise(exc)) from None
    if commands_only:
        _check_command_type(envelope.type)
    return envelope


def decode_command(envelope: Envelope) -> Command:
    """The validated command payload of a command envelope, or `InvalidCommand`."""
    name = envelope.type.removeprefix(COMMAND_TYPE_PREFIX)
    cls = COMMAND_TYPES.get(name) if envelope.type.startswith(COMMAND_TYPE_PREFIX) else None
    if cls is None:
        raise InvalidCommand(
            [
                ErrorItem(
                    loc=["type"], msg=f"unknown command type {envelope.type!r}", type="unknown_type"
                )
            ]
        )
    if envelope.data is None:
        raise InvalidCommand(
            [ErrorItem(loc=["data"], msg=f"{name} needs a data object", type="missing")]
        )
    refused = [
        ErrorItem(loc=["data", *path], msg=problem, type="invalid_text")
        for path, problem in refused_text(envelope.data)
    ]
    if refused:
        raise InvalidCommand(sorted(refused, key=lambda e: [str(p) for p in e.loc]))
    try:
        return cls.model_validate(envelope.data)
    except pydantic.ValidationError as exc:
        raise InvalidCommand(validation_errors(exc)) from None


def validation_errors(
    exc: pydantic.ValidationError, prefix: Sequence[str | int] = ("data",)
) -> list[ErrorItem]:
    """Pydantic's errors as `ErrorItem`s, without the offending input (it may be huge)."""
    return [
        ErrorItem(loc=[*prefix, *err["loc"]], msg=err["msg"], type=err["type"])
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _parse_json_object(raw: bytes | None) -> dict[str, Any]:
    if raw is None or len(raw) == 0:
        raise Undecodable("not_json", "the message has no value")
    # Checked before anything else touches the bytes.
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Undecodable(
            "too_large", f"{len(raw)} bytes is more than the limit of {MAX_MESSAGE_BYTES}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Undecodable("not_json", f"not UTF-8: invalid byte at offset {exc.start}") from None
    try:
        obj = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise Undecodable("not_json", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise Undecodable(
            "not_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN, Infinity, duplicate keys, a number with too many digits
        raise Undecodable("not_json", _value_error_text(exc)) from None
    if not isinstance(obj, dict):
        raise Undecodable("not_json", f"expected a JSON object, got {_json_kind(obj)}")
    _check_depth(obj)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    # Parsers differ on which duplicate wins, so a producer and we could read different data.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:100]!r}")
        seen.add(key)
    raise AssertionError("unreachable")


def _check_depth(root: dict[str, Any]) -> None:
    """The depth limit, checked iteratively (what is deeper never reaches a recursion)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise Undecodable("not_json", f"nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _check_command_type(type_: str) -> None:
    name = type_.removeprefix(COMMAND_TYPE_PREFIX)
    if not type_.startswith(COMMAND_TYPE_PREFIX) or name not in COMMAND_TYPES:
        raise Undecodable(
            "unknown_type",
            f"type {type_[:100]!r} is not {COMMAND_TYPE_PREFIX}<one of {', '.join(COMMAND_TYPES)}>",
        )


def _summarise(exc: pydantic.ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [_describe(err["loc"], err["msg"]) for err in errors[:_MAX_SUMMARISED_ERRORS]]
    if len(errors) > _MAX_SUMMARISED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_SUMMARISED_ERRORS} more")
    return "; ".join(parts)


def _describe(loc: Sequence[str | int], msg: str) -> str:
    where = ".".join(printable(str(part)) for part in loc)
    return f"{where}: {msg}" if where else msg


def _value_error_text(exc: ValueError) -> str:
    text = str(exc)
    # Python's own message for a 5,000-digit integer talks about interpreter settings.
    if "integer string conversion" in text:
        return "a number has too many digits"
    return text[:300] or "invalid JSON"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
