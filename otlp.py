"""Finished spans as OTLP/protobuf bytes, written straight to the wire format, and the
OTLP/HTTP exporter that sends them.

The SDK's exporter builds a Python protobuf object for every span, attribute and value
(``opentelemetry.exporter.otlp.proto.common``) and hashes each span's resource (a JSON
dump of its attributes) to group spans: about 70 us per span here, in the export thread
but under the GIL the worker's event loop needs. ``encode_request`` writes the same
``ExportTraceServiceRequest`` as bytes directly (the resource and scope once per batch),
several times faster; a unit test parses both encodings and compares them field for
field. ``OtlpSpanExporter`` is the SDK's ``OTLPSpanExporter`` (so the same ``OTEL_*``
configuration, HTTP client, retries and limits) with only the encoding swapped.

This module is long because it writes every message of the request by hand.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter,
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

log = logging.getLogger(__name__)

# Span.flags: the SDK's, "whether the parent is remote" is known (and then whether it is).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_KINDS: dict[SpanKind, bytes]  # the kind field; INTERNAL is 0 in the API, 1 in OTLP
_INT64 = range(-(2**63), 2**63)
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths as varints, up to 4 KiB (most fields, spans included, are shorter).
_LENGTHS = [_varint(n) for n in range(4096)]
_LENGTHS_MAX = len(_LENGTHS)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` already encoded)."""
    size = len(payload)
    return tag + (_LENGTHS[size] if size < _LENGTHS_MAX else _varint(size)) + payload


# Field tags, (number << 3) | wire type, as bytes. Wire types: 0 varint, 1 fixed64,
# 2 length-delimited, 5 fixed32.
def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


# AnyValue
_STRING, _BOOL, _INT, _DOUBLE = _tag(1, 2), _tag(2, 0), _tag(3, 0), _tag(4, 1)
_ARRAY, _KVLIST, _BYTES = _tag(5, 2), _tag(6, 2), _tag(7, 2)
# KeyValue, ArrayValue.values, KeyValueList.values, Resource.attributes: field 1 or 2
_F1, _F2, _F3, _F4 = _tag(1, 2), _tag(2, 2), _tag(3, 2), _tag(4, 2)
# Span
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT_ID = _F1, _F2, _F3, _F4
_NAME, _KIND, _START, _END = _tag(5, 2), _tag(6, 0), _tag(7, 1), _tag(8, 1)
_ATTRIBUTE, _DROPPED_ATTRIBUTES, _EVENT = _tag(9, 2), _tag(10, 0), _tag(11, 2)
_DROPPED_EVENTS, _LINK, _DROPPED_LINKS = _tag(12, 0), _tag(13, 2), _tag(14, 0)
_STATUS, _FLAGS = _tag(15, 2), _tag(16, 5)
# Status, Event, Link
_STATUS_MESSAGE, _STATUS_CODE = _tag(2, 2), _tag(3, 0)
_EVENT_TIME, _EVENT_DROPPED = _tag(1, 1), _tag(4, 0)
_LINK_DROPPED, _LINK_FLAGS = _tag(5, 0), _tag(6, 5)
_KINDS = {kind: _KIND + _varint(kind.value + 1) for kind in SpanKind}


def _value(value: Any) -> bytes:
    """An AnyValue's body: its one field, written even when empty (a oneof), none for
    None."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(_STRING, value.encode())
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"{value} is out of int64 range")
        return _INT + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_ARRAY, b"".join([_field(_F1, _value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _field(
            _KVLIST, b"".join([_field(_F1, _key_value(str(k), v)) for k, v in value.items()])
        )
    raise TypeError(f"Invalid type {type(value)} of value {value}")


_keys: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """A KeyValue's key field."""
    encoded_key = _field(_F1, key.encode())
    if len(_keys) < 10_000:  # attribute names repeat; a bound all the same
        _keys[key] = encoded_key
    return encoded_key


def _key_value(key: str, value: Any) -> bytes:
    """A KeyValue's body."""
    return (_keys.get(key) or _key(key)) + _field(_F2, _value(value))


# Attributes whose value is a short string, a bool or an int, as encoded KeyValue fields: most
# repeat from span to span (a topic, a command type, a span kind, a model). Keyed by
# (tag, key, value) for a string, (tag, key, type, value) for the others. Bounded:
# emptied when full (ids and offsets come once each).
_encoded: dict[tuple[Any, ...], bytes] = {}
_ENCODED_MAX = 8192
_SHORT = 128


def _keep(cache: dict[Any, bytes], key: Any, encoded: bytes) -> None:
    """Remembers an encoding in a bounded cache, emptied first when full (only a miss
    pays for this call)."""
    if len(cache) >= _ENCODED_MAX:
        cache.clear()
    cache[key] = encoded


def _length(size: int) -> bytes:
    return _LENGTHS[size] if size < _LENGTHS_MAX else _varint(size)


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a KeyValue field; one that cannot be encoded is left out and
    logged, as the SDK does."""
    if not attributes:
        return b""
    out = []
    for key, value in attributes.items():
        if type(value) is str:  # most attributes: written here without the calls below
            short = len(value) <= _SHORT
            if short:
                encoded = _encoded.get((tag, key, value))
                if encoded is not None:
                    out.append(encoded)
                    continue
            try:
                encoded_key = _keys.get(key) or _key(key)
                text = value.encode()
            except Exception as error:  # a lone surrogate, a key not a str: as below
                log.exception("Failed to encode key %s: %s", key, error)
                continue
            any_value = _STRING + _length(len(text)) + text
            body = encoded_key + _F2 + _length(len(any_value)) + any_value
            encoded = tag + _length(len(body)) + body
            if short:
                _keep(_encoded, (tag, key, value), encoded)
            out.append(encoded)
            continue
        kind = type(value)
        cached = kind in _CACHED
        if cached:
            # The type is part of the key: True == 1, encoded differently. (Floats are
            # not kept: -0.0 == 0.0.)
            encoded = _encoded.get((tag, key, kind, value))
            if encoded is not None:
                out.append(encoded)
                continue
        try:
            encoded = _field(tag, _key_value(key, value))
        except Exception as error:  # the SDK's rule: skip it, log it
            log.exception("Failed to encode key %s: %s", key, error)
            continue
        if cached:
            _keep(_encoded, (tag, key, kind, value), encoded)
        out.append(encoded)
    return b"".join(out)


_CACHED = frozenset((bool, int))


def _flags(context: SpanContext | None) -> bytes:
    remote = context is not None and context.is_remote
    return _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE if remote else _HAS_IS_REMOTE)


def _fixed64(tag: bytes, value: int | None) -> bytes:
    return tag + _pack_fixed64(value) if value else b""


def _count(tag: bytes, value: int) -> bytes:
    return tag + _varint(value) if value else b""


def _string(tag: bytes, value: str | None) -> bytes:
    return _field(tag, value.encode()) if value else b""


def _ids(context: SpanContext) -> bytes:
    """A link's trace id and span id (fields 1 and 2 of both)."""
    return (
        _F1 + b"\x10" + context[0].to_bytes(16, "big")
        + _F2 + b"\x08" + context[1].to_bytes(8, "big")
    )  # fmt: skip


_LOCAL_FLAGS = _FLAGS + _pack_fixed32(_HAS_IS_REMOTE)
_REMOTE_FLAGS = _FLAGS + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_EMPTY_STATUS = _STATUS + b"\x00"
_PLAIN = (dict, list, tuple)
# Fixed-size fields in one call each (protobuf reads fields in any order). Big-endian:
# the trace id (field 1, 16 bytes), the span id (2) and the parent's (4), each with its
# tag and length; little-endian: the start and end times (7 and 8, fixed64).
_pack_trace_id = struct.Struct(">HQQ").pack
_pack_span_id = struct.Struct(">HQ").pack
_pack_span_ids = struct.Struct(">HQHQ").pack
_pack_times = struct.Struct("<BQBQ").pack
_TRACE_ID_TAG, _SPAN_ID_TAG, _PARENT_ID_TAG = 0x0A10, 0x1208, 0x2208
_START_TAG, _END_TAG = _START[0], _END[0]
_LOW_64 = 2**64 - 1
# A span's name and kind (fields 5 and 6), encoded: a process makes a few names, each
# many times. Bounded as ``_encoded``.
_names: dict[tuple[str, int], bytes] = {}
# The last trace id encoded: the spans of a trace reach the exporter together.
_last_trace: list[Any] = [None, b""]


def _span(span: ReadableSpan) -> bytes:
    """A Span field of a ScopeSpans (field 2), with the fields the SDK's encoder sets
    (fixed-size ones first).

    Reads the span's own fields: its properties copy (attributes into a mapping proxy,
    events and links into tuples) and ask ``isinstance`` of the SDK's bounded
    containers for the dropped counts. A ``SpanContext`` is read as the tuple it is (its
    properties are Python calls). The SDK is pinned (pyproject.toml);
    tests/unit/test_otlp.py compares the result with the SDK's own encoder, field for
    field."""
    context = span._context
    assert context is not None
    trace_id, span_id, _, _, trace_state, _ = context
    if trace_id == _last_trace[0]:
        encoded_trace = _last_trace[1]
    else:
        encoded_trace = _pack_trace_id(_TRACE_ID_TAG, trace_id >> 64, trace_id & _LOW_64)
        _last_trace[:] = trace_id, encoded_trace
    parent = span._parent
    # (Enum members hash in Python: their plain values are the keys.)
    key = (span._name, span._kind._value_)
    name_kind = _names.get(key)
    if name_kind is None:
        name_kind = _string(_NAME, span._name) + _KINDS[span._kind]
        _keep(_names, key, name_kind)
    start, end = span._start_time, span._end_time
    parts = [
        encoded_trace,
        _pack_span_id(_SPAN_ID_TAG, span_id)
        if parent is None
        else _pack_span_ids(_SPAN_ID_TAG, span_id, _PARENT_ID_TAG, parent[1]),
        name_kind,
        _pack_times(_START_TAG, start, _END_TAG, end)
        if start and end
        else _fixed64(_START, start) + _fixed64(_END, end),
    ]
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        parts.append(_string(_TRACE_STATE, ",".join(f"{k}={v}" for k, v in trace_state.items())))
    attributes = span._attributes
    if attributes:
        parts.append(_attributes(_ATTRIBUTE, attributes))
    events, links = span._events, span._links
    if events or links or (type(attributes) not in _PLAIN and attributes is not None):
        parts.append(_rarer_fields(span))
    status = span._status
    code, description = status._status_code._value_, status._description
    if code or description:
        parts.append(
            _field(_STATUS, _string(_STATUS_MESSAGE, description) + _count(_STATUS_CODE, code))
        )
    else:
        parts.append(_EMPTY_STATUS)
    parts.append(_REMOTE_FLAGS if parent is not None and parent[2] else _LOCAL_FLAGS)
    body = b"".join(parts)
    size = len(body)
    return _F2 + (_LENGTHS[size] if size < _LENGTHS_MAX else _varint(size)) + body


def _rarer_fields(span: ReadableSpan) -> bytes:
    """Events, links and the counts of what was dropped (none of dspyops' spans but a
    projector batch's have links)."""
    parts = []
    attributes = span._attributes
    if type(attributes) not in _PLAIN and attributes is not None:
        parts.append(_count(_DROPPED_ATTRIBUTES, span.dropped_attributes))
    events = span._events
    for event in events:
        body = (
            _fixed64(_EVENT_TIME, event.timestamp)
            + _string(_F2, event.name)
            + _attributes(_F3, event.attributes)
            + _count(_EVENT_DROPPED, event.dropped_attributes)
        )
        parts.append(_field(_EVENT, body))
    if type(events) not in _PLAIN:
        parts.append(_count(_DROPPED_EVENTS, span.dropped_events))
    links = span._links
    for link in links:
        body = (
            _ids(link.context)
            + _attributes(_F4, link.attributes)
            + _count(_LINK_DROPPED, link.dropped_attributes)
            + _LINK_FLAGS
            + _flags(link.context)
        )
        parts.append(_field(_LINK, body))
    if type(links) not in _PLAIN:
        parts.append(_count(_DROPPED_LINKS, span.dropped_links))
    return b"".join(parts)


def _scope_spans(scope: InstrumentationScope | None, spans: list[bytes]) -> bytes:
    """A ScopeSpans' body: the scope (present even when None, as the SDK sends it), then
    its spans (``_span``'s fields)."""
    scope_body = b""
    if scope is not None:
        scope_body = (
            _string(_F1, scope.name)
            + _string(_F2, scope.version)
            + _attributes(_F3, scope.attributes)
        )
    body = _field(_F1, scope_body) + b"".join(spans)
    return body + _string(_F3, scope.schema_url if scope is not None else None)


_NOTHING = object()


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans``, as the SDK's
    ``encode_spans(spans).SerializePartialToString()``: grouped by resource, then by
    scope, in the order first seen."""
    by_resource: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    # Resources hash by a JSON dump of their attributes, scopes by a tuple of theirs:
    # once per object in the batch (spans share their provider's), not once per span.
    by_id: dict[tuple[int, int], list[bytes]] = {}
    last: tuple[Any, Any] = (_NOTHING, _NOTHING)  # the last span's resource and scope
    encoded: list[bytes] = []
    for span in spans:
        resource, scope = span._resource, span._instrumentation_scope
        if resource is not last[0] or scope is not last[1]:
            last = resource, scope
            group = by_id.get((id(resource), id(scope)))
            if group is None:
                scopes = by_resource.setdefault(resource, {})
                group = by_id[id(resource), id(scope)] = scopes.setdefault(scope or None, [])
            encoded = group
        encoded.append(_span(span))
    request = []
    for resource, scopes in by_resource.items():
        body = _field(_F1, _attributes(_F1, resource.attributes))
        for scope, encoded in scopes.items():
            body += _field(_F2, _scope_spans(scope, encoded))
        request.append(_field(_F1, body + _string(_F3, resource.schema_url)))
    return b"".join(request)


class OtlpSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter (configuration, transport, retries, size limit and
    its own metrics unchanged) with ``encode_request`` as the encoding."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return super().export(spans)  # logs, fails
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_request(spans)
            except Exception as error:  # as the SDK: the batch fails, logged
                log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(serialized, self._max_request_size):
                log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            sent = self._client.export(serialized)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                    if sent.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
