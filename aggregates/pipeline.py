"""Pipelines: a program's steps checked against its signature, once, at registration.

Every step input is bound exactly once, to a program input (`question`) or to an output
of an EARLIER step (`retrieve.passages`): the list's order is the run order, so a
reference to the same or a later step is a cycle and is refused. Every program output is
bound the same way. Types must fit (`list[str]` into `list[str]`, `T` into
`Optional[T]`, an `int` into a `float`, a `Literal` into its base type); a mismatch names
both types. Each problem is one error whose `loc` points at the step and binding
(`["steps", 1, "bindings", "context"]`). What passes is stored normalized (canonical
signatures, every binding written out, kind defaults filled) so every later reader sees
one form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dspyops.aggregates.errors import ErrorDict, InvalidInput, error, prefixed
from dspyops.events.steps import Step
from dspyops.signatures import CompiledSignature, SignatureError, compile_signature
from dspyops.signatures.render import render_type
from dspyops.signatures.spec import FieldSpec, ScalarType, TypeSpec
from dspyops.signatures.types import assignable

RETRIEVE_SIGNATURE = "query: str -> passages: list[str], document_ids: list[str]"
REASONING = FieldSpec("reasoning", ScalarType("str"), "output")
CORPUS_SEARCH = "corpus_search"
# What each kind takes beyond name, signature, instructions and bindings, with defaults.
KIND_OPTIONS: dict[str, dict[str, Any]] = {
    "Predict": {},
    "ChainOfThought": {},
    "Retrieve": {"corpus": None, "k": 5},
    "ReAct": {"tools": None, "max_iters": 5, "corpus": None},
    "BestOfN": {"attempts": 3, "reward": None, "threshold": 1.0},
    "Refine": {"attempts": 3, "reward": None, "threshold": 1.0},
}
OPTION_FIELDS = ("corpus", "k", "tools", "max_iters", "attempts", "reward", "threshold")
# Names a step cannot take: they are attributes every dspy.Module has.
RESERVED_STEP_NAMES = frozenset(
    {"forward", "aforward", "callbacks", "history", "named_predictors", "predictors",
     "parameters", "named_parameters", "named_sub_modules", "deepcopy", "reset_copy",
     "dump_state", "load_state", "save", "load", "batch", "inspect_history", "set_lm",
     "get_lm", "map_named_predictors", "acall", "call", "compiled", "steps", "outputs"}
)  # fmt: skip


@dataclass(frozen=True)
class Checkers:
    """What the domain asks the runtime (tools, metrics) and the store (corpora)."""

    corpus_exists: Callable[[str], bool]
    tool_errors: Callable[[list[str]], list[ErrorDict]]
    metric_errors: Callable[[str], list[ErrorDict]]


def check_pipeline(
    program: CompiledSignature,
    steps: list[Step],
    outputs: dict[str, str] | None,
    checkers: Checkers,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The steps and output bindings normalized; raises InvalidInput listing every problem."""
    errors: list[ErrorDict] = []
    # What each reference may point at, as its type: program inputs, then step outputs.
    available: dict[str, TypeSpec] = {f.name: f.type for f in program.parsed.inputs}
    seen: set[str] = set()
    normalized = []
    for index, step in enumerate(steps):
        where: list[str | int] = ["steps", index]
        if step.name in seen:
            errors.append(
                error([*where, "name"], f"two steps are named {step.name!r}", "duplicate")
            )
        elif step.name in RESERVED_STEP_NAMES:
            msg = f"step name {step.name!r} is reserved (every dspy.Module has it)"
            errors.append(error([*where, "name"], msg, "reserved_name"))
        seen.add(step.name)
        compiled = _step_signature(step, where, errors)
        options = _options(step, where, checkers, errors)
        bindings = _bindings(step, compiled, available, where, errors) if compiled else {}
        if compiled is not None:
            for field in (*compiled.parsed.outputs, *_added_outputs(step.kind)):
                available[f"{step.name}.{field.name}"] = field.type
        normalized.append(
            {
                "name": step.name,
                "kind": step.kind,
                "signature": compiled.text if compiled else None,
                "instructions": step.instructions,
                "bindings": bindings,
                **options,
            }
        )
    output_bindings = _outputs(program, steps, outputs, available, errors)
    if errors:
        raise InvalidInput(errors=errors)
    return normalized, output_bindings


def _step_signature(
    step: Step, where: list[str | int], errors: list[ErrorDict]
) -> CompiledSignature | None:
    text = step.signature
    if step.kind == "Retrieve":
        if text is not None and _canonical(text) != _canonical(RETRIEVE_SIGNATURE):
            msg = f"a Retrieve step's signature is fixed: {RETRIEVE_SIGNATURE} (or leave it out)"
            errors.append(error([*where, "signature"], msg, "invalid_signature"))
            return None
        text = RETRIEVE_SIGNATURE
    if text is None:
        errors.append(
            error([*where, "signature"], f"a {step.kind} step needs a signature", "missing")
        )
        return None
    try:
        return compile_signature(text, instructions=step.instructions)
    except SignatureError as exc:
        for issue in exc.issues:
            errors.append(error([*where, "signature"], str(issue), issue.code))
        return None


def _canonical(text: str) -> str | None:
    try:
        return compile_signature(text).text
    except SignatureError:
        return None


def _options(
    step: Step, where: list[str | int], checkers: Checkers, errors: list[ErrorDict]
) -> dict[str, Any]:
    allowed = KIND_OPTIONS[step.kind]
    values: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        given = getattr(step, name)
        if given is not None and name not in allowed:
            msg = f"a {step.kind} step takes no {name!r}"
            errors.append(error([*where, name], msg, "not_allowed"))
        values[name] = given if given is not None else allowed.get(name)
    if step.kind == "Retrieve" and values["corpus"] is None:
        errors.append(error([*where, "corpus"], "a Retrieve step names its corpus", "missing"))
    if step.kind == "ReAct":
        if values["tools"] is None:
            errors.append(error([*where, "tools"], "a ReAct step names its tools", "missing"))
        else:
            errors += prefixed(checkers.tool_errors(list(values["tools"])), *where, "tools")
        uses_search = CORPUS_SEARCH in (values["tools"] or [])
        if uses_search and values["corpus"] is None:
            msg = f"the {CORPUS_SEARCH} tool searches the step's corpus: name one"
            errors.append(error([*where, "corpus"], msg, "missing"))
        if values["corpus"] is not None and not uses_search:
            msg = f"a ReAct step's corpus is for the {CORPUS_SEARCH} tool, which it does not use"
            errors.append(error([*where, "corpus"], msg, "not_allowed"))
    if step.kind in {"BestOfN", "Refine"}:
        if values["reward"] is None:
            msg = f"a {step.kind} step names its reward: a registered metric"
            errors.append(error([*where, "reward"], msg, "missing"))
        else:
            for problem in checkers.metric_errors(values["reward"]):
                errors.append({**problem, "loc": [*where, "reward"]})
    if values.get("corpus") is not None and not checkers.corpus_exists(values["corpus"]):
        errors.append(error([*where, "corpus"], f"no corpus {values['corpus']!r}", "not_found"))
    return values


def _bindings(
    step: Step,
    compiled: CompiledSignature,
    available: dict[str, TypeSpec],
    where: list[str | int],
    errors: list[ErrorDict],
) -> dict[str, str]:
    inputs = {field.name: field for field in compiled.parsed.inputs}
    for name in step.bindings:
        if name not in inputs:
            msg = f"step {step.name!r} has no input {name!r} (its inputs: {', '.join(inputs)})"
            errors.append(error([*where, "bindings", name], msg, "unknown_field"))
    bound: dict[str, str] = {}
    for name, field in inputs.items():
        reference = step.bindings.get(name, name)
        loc = [*where, "bindings", name]
        source = available.get(reference)
        if source is None:
            errors.append(error(loc, _unbound(step.name, name, reference, available), "unbound"))
        elif not assignable(source, field.type):
            errors.append(
                error(
                    loc,
                    _mismatch(reference, source, f"{step.name}.{name}", field.type),
                    "type_mismatch",
                )
            )
        bound[name] = reference
    return bound


def _outputs(
    program: CompiledSignature,
    steps: list[Step],
    outputs: dict[str, str] | None,
    available: dict[str, TypeSpec],
    errors: list[ErrorDict],
) -> dict[str, str]:
    given = dict(outputs or {})
    fields = {field.name: field for field in program.parsed.outputs}
    for name in given:
        if name not in fields:
            msg = f"the program has no output {name!r} (its outputs: {', '.join(fields)})"
            errors.append(error(["outputs", name], msg, "unknown_field"))
    bound: dict[str, str] = {}
    for name, field in fields.items():
        reference = given.get(name) or _last_step_with(name, steps, available)
        source = available.get(reference) if reference else None
        if reference is None or source is None:
            msg = (
                f"program output {name!r} is bound to nothing: bind it in `outputs` to a "
                f"step's output (`step.{name}`)"
                if reference is None
                else _unbound("the program", name, reference, available)
            )
            errors.append(error(["outputs", name], msg, "unbound"))
        elif not assignable(source, field.type):
            errors.append(
                error(
                    ["outputs", name],
                    _mismatch(reference, source, name, field.type),
                    "type_mismatch",
                )
            )
        else:
            bound[name] = reference
    return bound


def _last_step_with(name: str, steps: list[Step], available: dict[str, TypeSpec]) -> str | None:
    for step in reversed(steps):
        if f"{step.name}.{name}" in available:
            return f"{step.name}.{name}"
    return None


def _added_outputs(kind: str) -> tuple[FieldSpec, ...]:
    # ChainOfThought writes its reasoning first: a later step may read it.
    return (REASONING,) if kind == "ChainOfThought" else ()


def _unbound(owner: str, name: str, reference: str, available: dict[str, TypeSpec]) -> str:
    if "." in reference:
        step = reference.split(".", 1)[0]
        if not any(key.startswith(step + ".") for key in available):
            return (
                f"{owner}'s {name!r} reads {reference}, but no earlier step is named {step!r} "
                "(a step reads only steps before it: a later one would be a cycle)"
            )
        return f"{owner}'s {name!r} reads {reference}, which step {step!r} does not output"
    return (
        f"{owner}'s input {name!r} is not bound: bind it to a program input or an earlier "
        f"step's output (`step.field`); there is no program input {reference!r}"
    )


def _mismatch(source: str, source_type: TypeSpec, target: str, target_type: TypeSpec) -> str:
    return f"{source} is {render_type(source_type)}, but {target} takes {render_type(target_type)}"
