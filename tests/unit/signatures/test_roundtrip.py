"""Property: the canonical text is a fixed point, whatever spelling it came from."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dspyops.signatures import (
    Constraint,
    DictType,
    FieldSpec,
    ListType,
    LiteralType,
    OptionalType,
    ParsedSignature,
    ScalarType,
    TypeSpec,
    parse,
    render,
)
from dspyops.signatures.grammar import MAX_DEPTH
from dspyops.signatures.names import name_problem

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: name_problem(n) is None
)
scalars = st.sampled_from(
    [ScalarType("str"), ScalarType("int"), ScalarType("float"), ScalarType("bool")]
)
literal_strings = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=8
)
literal_values = st.lists(
    st.one_of(literal_strings, st.integers(-(10**6), 10**6)),
    min_size=1,
    max_size=4,
    unique_by=lambda v: (type(v), v),
).map(tuple)


@st.composite
def types(draw: st.DrawFn, depth: int = 0, optional_ok: bool = True) -> TypeSpec:
    # Leaves are favoured so most types stay small while some reach MAX_DEPTH.
    roll = draw(st.integers(0, 9)) if depth < MAX_DEPTH else 0
    if roll <= 3:
        return draw(scalars)
    if roll == 4:
        return LiteralType(draw(literal_values))
    if roll <= 6:
        return ListType(draw(types(depth + 1)))
    if roll == 7 or not optional_ok:
        return DictType(draw(types(depth + 1)))
    return OptionalType(draw(types(depth + 1, optional_ok=False)))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def bounds_for(draw: st.DrawFn, spec: TypeSpec) -> Constraint | None:
    core = spec.inner if isinstance(spec, OptionalType) else spec
    if not draw(st.booleans()):
        return None
    if core in (ScalarType("str"),) or isinstance(core, ListType):
        low, high = sorted(draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2)))
        return Constraint("length", low, high)
    if core == ScalarType("int"):
        low, high = sorted(draw(st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=2)))
        return Constraint("range", low, high)
    if core == ScalarType("float"):
        pair = draw(st.lists(st.one_of(finite, st.integers(-100, 100)), min_size=2, max_size=2))
        return Constraint("range", min(pair), max(pair))
    return None


@st.composite
def fields(draw: st.DrawFn, name: str, side: Any) -> FieldSpec:
    spec = draw(types())
    return FieldSpec(name, spec, side, draw(bounds_for(spec)))


@st.composite
def signatures(draw: st.DrawFn) -> ParsedSignature:
    all_names = draw(st.lists(names, min_size=2, max_size=8, unique=True))
    split = draw(st.integers(1, len(all_names) - 1))
    inputs = tuple(draw(fields(n, "input")) for n in all_names[:split])
    outputs = tuple(draw(fields(n, "output")) for n in all_names[split:])
    return ParsedSignature(inputs, outputs)


# -- non-canonical spellings of the same signature ------------------------------------

spaces = st.sampled_from(["", "", " ", "  ", "\t", "\n", " \n "])


def number(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@st.composite
def spell_literal(draw: st.DrawFn, value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    quote = draw(st.sampled_from(['"', "'"]))
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


@st.composite
def spell_type(draw: st.DrawFn, spec: TypeSpec, constraint: Constraint | None = None) -> str:
    w = lambda: draw(spaces)  # noqa: E731
    bounds = ""
    if constraint is not None:
        bounds = f"[{w()}{number(constraint.low)}{w()},{w()}{number(constraint.high)}{w()}]"
    if isinstance(spec, ScalarType):
        return spec.name + w() + bounds
    if isinstance(spec, ListType):
        return f"list{w()}[{w()}{draw(spell_type(spec.item))}{w()}]{w()}{bounds}"
    if isinstance(spec, DictType):
        return f"dict[{w()}str{w()},{w()}{draw(spell_type(spec.value))}{w()}]"
    if isinstance(spec, OptionalType):
        inner = draw(spell_type(spec.inner, constraint))
        return draw(
            st.sampled_from(
                [
                    f"Optional[{w()}{inner}{w()}]",
                    f"{inner}{w()}|{w()}None",
                    f"None{w()}|{w()}{inner}",
                ]
            )
        )
    values = [draw(spell_literal(v)) for v in spec.values]
    return f"Literal[{w()}" + f"{w()},{w()}".join(values) + f"{w()}]"


@st.composite
def spellings(draw: st.DrawFn) -> tuple[ParsedSignature, str]:
    sig = draw(signatures())

    def side(fs: tuple[FieldSpec, ...]) -> str:
        parts = [
            f"{draw(spaces)}{f.name}{draw(spaces)}:{draw(spaces)}"
            + draw(spell_type(f.type, f.constraint))
            for f in fs
        ]
        return ",".join(parts)

    return sig, f"{side(sig.inputs)}{draw(spaces)}->{draw(spaces)}{side(sig.outputs)}{draw(spaces)}"


@settings(max_examples=100, deadline=None)
@given(signatures())
def test_parse_inverts_render(sig: ParsedSignature) -> None:
    text = render(sig)
    assert parse(text) == sig
    assert render(parse(text)) == text


@settings(max_examples=100, deadline=None)
@given(spellings())
def test_any_spelling_renders_to_the_same_canonical_text(case: tuple[ParsedSignature, str]) -> None:
    sig, text = case
    canonical = render(parse(text))
    assert canonical == render(sig)
    assert render(parse(canonical)) == canonical
