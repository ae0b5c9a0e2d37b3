"""Hypothesis strategies for the JSON Schemas pydantic writes: what the fuzz tests send.

Why here and not hypothesis-jsonschema: its last release (0.23.1) relies on a Hypothesis
internal (`cu.many(...).more()`) that Hypothesis 6.170.6 removed, and schemathesis's own
generator is not public API. The schemas of the wire contract use a small subset of
JSON Schema, covered here: `$ref`/`$defs`, `const`, `enum`, `anyOf`, the JSON types with
their bounds (`minimum`/`maximum` and exclusive ones, `minLength`/`maxLength`,
`pattern`, `minItems`/`maxItems`), `format: date-time`, and objects with `properties`,
`required` and `additionalProperties`, or maps with `patternProperties` (one pattern) and
`minProperties`/`maxProperties`. Anything else raises, so a schema change that
needs more shows here instead of generating wrong data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]
MAX_ITEMS = 4
MAX_TEXT = 24
KNOWN = {
    "$ref", "$defs", "$schema", "const", "enum", "anyOf", "type", "title", "description",
    "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "pattern", "format", "items", "minItems", "maxItems", "properties",
    "required", "additionalProperties", "x-dspyops-terminal", "examples",
    "patternProperties", "minProperties", "maxProperties",
}  # fmt: skip

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=MAX_TEXT)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=MAX_ITEMS)
        | st.dictionaries(st.text(max_size=8), inner, max_size=MAX_ITEMS)
    ),
    max_leaves=8,
)


def from_schema(schema: Schema, defs: dict[str, Schema] | None = None) -> st.SearchStrategy[Any]:
    defs = schema.get("$defs", {}) if defs is None else defs
    unknown = set(schema) - KNOWN
    if unknown:
        raise NotImplementedError(f"schema keywords not covered: {sorted(unknown)}")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(defs[name], defs))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(option, defs) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind is None:
        return ANY_JSON
    return _typed(kind, schema, defs)


def _typed(kind: str, schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40) - 1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", 2**40 + 1) - 1)
        return st.integers(min_value=int(low), max_value=int(high))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
            max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "string":
        return _string(schema)
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        low = schema.get("minItems", 0)
        return st.lists(
            items, min_size=low, max_size=min(schema.get("maxItems", MAX_ITEMS), low + MAX_ITEMS)
        )
    if kind == "object":
        return _object(schema, defs)
    raise NotImplementedError(f"type {kind!r}")


def _string(schema: Schema) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", max(low, MAX_TEXT))
    if schema.get("format") == "date-time":
        offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
        moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
        return st.builds(
            lambda t, tz: t.replace(tzinfo=tz).isoformat(), moments, offsets | st.just(UTC)
        )
    if "pattern" in schema:
        pattern: str = schema["pattern"]
        texts: st.SearchStrategy[str] = st.from_regex(pattern, fullmatch=True)
        return texts.filter(lambda s: low <= len(s) <= high)
    return st.text(min_size=low, max_size=min(high, low + MAX_TEXT))


def _object(schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[dict[str, Any]]:
    if "patternProperties" in schema:
        return _map(schema, defs)
    properties: dict[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = {name: from_schema(sub, defs) for name, sub in properties.items() if name in required}
    optional = {
        name: from_schema(sub, defs) for name, sub in properties.items() if name not in required
    }
    extra = schema.get("additionalProperties", True)
    if extra is False:
        extras: st.SearchStrategy[dict[str, Any]] = st.just({})
    else:
        values = ANY_JSON if extra is True else from_schema(extra, defs)
        keys = st.text(min_size=1, max_size=12).filter(lambda k: k not in properties)
        extras = st.dictionaries(keys, values, max_size=MAX_ITEMS if properties == {} else 2)
    return st.builds(
        lambda base, more: {**more, **base},
        st.fixed_dictionaries(fixed, optional=optional),
        extras,
    )


def _map(schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[dict[str, Any]]:
    """A map whose keys match one pattern (pydantic's `dict[<str with a pattern>, V]`)."""
    ((pattern, values),) = schema["patternProperties"].items()
    low = schema.get("minProperties", 0)
    return st.dictionaries(
        st.from_regex(pattern, fullmatch=True),
        from_schema(values, defs),
        min_size=low,
        max_size=min(schema.get("maxProperties", MAX_ITEMS), low + MAX_ITEMS),
    )
