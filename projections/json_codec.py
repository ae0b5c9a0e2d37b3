"""JSON read with orjson to exactly the values the standard library's parser gives.

The projector decodes every stored event's state (eventsourcing's JSONTranscoder:
`json` with an object hook), and the API reads json/jsonb columns (psycopg: `json.loads`);
both were large shares of their CPU (py-spy, bench/bench_read_side.py). orjson reads the
same documents several times faster, with two exceptions the standard library's parser
is kept for: integers past 64 bits (orjson turns them into floats) and text orjson
refuses (NaN and Infinity, which eventsourcing's encoder writes for such floats, a lone
surrogate escape, a number past a double's range).

The projector also writes the read tables' jsonb values with orjson (`dumps_jsonb`), to
the document `json.dumps` writes or, where orjson's could differ, with `json.dumps` itself.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding, TranscodingNotRegisteredError

# orjson reads an integer past 64 bits as a float (json: an int): any float this large
# may be one, and sends the document to json (a float literal this large reads the same
# either way, just slower). Every integer orjson reads as an int is exact.
_BIG = 2.0**63
_MISSING = object()
# What orjson must not write itself, so that `json.dumps` decides: dates and times,
# dataclasses and subclasses of str, int, dict and list (json.dumps refuses the first
# two and writes the last as their base types).
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_PASSTHROUGH |= orjson.OPT_PASSTHROUGH_SUBCLASS


class _Inexact(Exception):
    """orjson's reading may differ from json's."""


def loads(data: str | bytes) -> Any:
    """`json.loads(data)`, faster."""
    try:
        return _walk(orjson.loads(data), None)
    except (orjson.JSONDecodeError, _Inexact):
        return json.loads(data)


def dumps_jsonb(value: Any) -> str:
    """A JSON document PostgreSQL reads into the same jsonb as `json.dumps(value)`, or
    refuses as it refuses that one. orjson writes NaN and Infinity as null (json: as NaN,
    which jsonb refuses: the event is skipped), so a document with a null in it is
    written by `json.dumps`; so is one orjson refuses (an integer past 64 bits, a key
    that is not a string, a lone surrogate, a type passed through above). orjson writes a
    UUID and a plain Enum, which `json.dumps` refuses, as their strings: stored events
    hold neither in a value projected to jsonb (they come from JSON and `storable`)."""
    try:
        data = orjson.dumps(value, option=_PASSTHROUGH)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)
    return json.dumps(value) if b"null" in data else data.decode()


def _walk(value: Any, names: dict[str, Transcoding] | None) -> Any:
    """`value` checked for floats that may have been integers (raises _Inexact), and with
    `names`, eventsourcing's object hook applied: `{"_type_", "_data_"}` objects become
    the registered transcoding's value, innermost first."""
    kind = type(value)
    if kind is float:
        if not -_BIG < value < _BIG:
            raise _Inexact
    elif kind is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is float:
                if not -_BIG < item < _BIG:
                    raise _Inexact
            elif kind is dict or kind is list:
                value[key] = _walk(item, names)
        if names is not None and len(value) == 2 and "_type_" in value and "_data_" in value:
            name = value["_type_"]
            transcoding = names.get(name)
            if transcoding is None:
                raise TranscodingNotRegisteredError(
                    f"Data serialized with name '{name}' is not deserializable. "
                    "Please register a custom transcoding for this type."
                )
            return transcoding.decode(value["_data_"])
    elif kind is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is float:
                if not -_BIG < item < _BIG:
                    raise _Inexact
            elif kind is dict or kind is list:
                value[index] = _walk(item, names)
    return value


class FastJSONTranscoder(JSONTranscoder):
    """eventsourcing's JSONTranscoder, same transcodings and same values, decoding with
    orjson: the object hook's work is done by one walk afterwards (`_walk`)."""

    def decode(self, data: bytes) -> Any:
        try:
            return _walk(orjson.loads(data), self.names)
        except (orjson.JSONDecodeError, _Inexact):
            return super().decode(data)
