"""Build the DSPy module for a program version, and load its saved state safely.

A program version stores its module kind, its signature and (after optimization) the
JSON from ``module.dump_state()``. Field types are not in that state, so the module is
always rebuilt from kind + signature first and the state loaded onto it.

Module kinds of a one-signature program: those that run one signature with no tools and
no code execution.

- ``Predict``: one LM call.
- ``ChainOfThought``: one LM call that also writes a ``reasoning`` output first.

A pipeline's steps (``runtime/pipeline.py``) may also be ``ReAct`` (tools by name from
the operator's ``dspyops.tools`` entry points, ``runtime/tools.py``), ``BestOfN`` and
``Refine`` (their reward is a registered metric by name, never code) and ``Retrieve``.
Left out on purpose everywhere: ``CodeAct``, ``ProgramOfThought``/``RLM`` (execute
generated code), ``MultiChainComparison`` (needs M prior completions as input), ``KNN``
(needs an embedder and a training set), ``Parallel`` (a runner, not a module for a
signature).

``load_state`` in DSPy is not a validator: missing keys raise half-way, extra keys are
set as attributes, and signature fields are zipped without a length check (dspy issue
9589). So the state is checked against the rebuilt module first, the load is refused
with every problem listed, and a state that names an LM is refused: the LM comes from
a server-side profile, never from stored data. Nothing here reads pickles.

The same checks serve composite modules (plugin modules, ``runtime/plugins.py``): their
state is keyed by ``named_predictors()`` paths (``generate_query.predict``), one
predictor's state each, whose demos may also name the module's other fields (optimizers
put labelled examples in every predictor). A state is plain JSON or refused: objects
with string keys, arrays, strings, finite numbers, booleans and null, nothing else.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Iterable, Set
from typing import Any

import dspy

from dspyops.signatures import SignatureError, compile_signature

MODULE_KINDS: dict[str, Callable[[type[dspy.Signature]], dspy.Module]] = {
    "Predict": dspy.Predict,
    "ChainOfThought": dspy.ChainOfThought,
}

# Keys a Predict's dump_state() writes; "fields" only when decision criteria are set.
_PREDICTOR_KEYS = frozenset({"traces", "train", "demos", "signature", "lm"})
_OPTIONAL_PREDICTOR_KEYS = frozenset({"fields"})
# Bootstrapped demos carry this marker next to the signature's fields.
_DEMO_MARKERS = frozenset({"augmented"})


class UnknownModuleKind(ValueError):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"unknown module kind {kind!r}; known: {', '.join(MODULE_KINDS)}")


class StateMismatch(ValueError):
    """Saved state does not fit the rebuilt module; nothing was loaded."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("saved state does not fit the module: " + "; ".join(problems))


def build_module(
    kind: str, signature: type[dspy.Signature], state: dict[str, Any] | None = None
) -> dspy.Module:
    """A fresh module of ``kind`` for ``signature``, with ``state`` loaded if given."""
    factory = MODULE_KINDS.get(kind)
    if factory is None:
        raise UnknownModuleKind(kind)
    module = factory(signature)
    if state is not None:
        load_state(module, state)
    return module


def load_state(module: dspy.Module, state: Any) -> None:
    problems = state_problems(module, state)
    if problems:
        raise StateMismatch(problems)
    try:
        # DSPy loads onto a deep copy first, so a failure here leaves ``module`` as it was.
        module.load_state(state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateMismatch([f"dspy refused the state: {exc}"]) from exc


def state_problems(module: dspy.Module, state: Any) -> list[str]:
    """Every way ``state`` fails to fit ``module``; empty when it fits."""
    if not isinstance(state, dict):
        return [f"state must be an object, got {type(state).__name__}"]
    not_json = json_problems(state)
    if not_json:
        return not_json
    if isinstance(module, dspy.Predict):
        return _predictor_problems("", module, state)
    predictors = dict(module.named_predictors())
    problems = [f"missing state for predictor {n!r}" for n in predictors if n not in state]
    problems += [f"state for unknown predictor {n!r}" for n in state if n not in predictors]
    shared = _composite_fields(module, predictors.values())
    for name, predictor in predictors.items():
        if name in state:
            problems += _predictor_problems(f"{name}.", predictor, state[name], shared)
    return problems


def _composite_fields(module: dspy.Module, predictors: Iterable[dspy.Predict]) -> set[str]:
    """Fields a demo of any predictor in ``module`` may carry besides the predictor's own.

    Optimizers put labelled examples (the program's fields) in every predictor's demos
    (LabeledFewShot, BootstrapFewShot's labelled demos); DSPy's adapters use only the
    predictor's fields. So a composite module's demos may name any field of its
    predictors, or of its ``dspyops_signature`` (a plugin's program fields).
    """
    names = {name for predictor in predictors for name in predictor.signature.fields}
    text = getattr(module, "dspyops_signature", None)
    if isinstance(text, str):
        with contextlib.suppress(SignatureError):
            names.update(field.name for field in compile_signature(text).parsed.fields)
    return names


def json_problems(value: Any, where: str = "state", limit: int = 10) -> list[str]:
    """Where ``value`` is not plain JSON (the first ``limit`` places); empty when it is.

    Walked with a queue, not recursion: a deeply nested value cannot exhaust the stack.
    """
    problems: list[str] = []
    queue: deque[tuple[str, Any]] = deque([(where, value)])
    seen: set[int] = set()
    while queue and len(problems) < limit:
        path, item = queue.popleft()
        if isinstance(item, dict | list):
            # Decoded JSON is a tree; a container met twice is a shared or circular one.
            if id(item) in seen:
                problems.append(f"{path} is a container met before (shared or circular)")
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    queue.append((f"{path}.{key}", inner))
                else:
                    problems.append(f"{path} has a key that is not a string: {key!r}")
        elif isinstance(item, list):
            queue.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(f"{path} is {item}, which JSON cannot hold")
        elif item is not None and not isinstance(item, str | int | float | bool):
            problems.append(f"{path} is not a JSON value (type {type(item).__name__})")
    return problems


def _predictor_problems(
    where: str, predictor: dspy.Predict, state: Any, shared: Set[str] = frozenset()
) -> list[str]:
    if not isinstance(state, dict):
        return [f"{where or 'state'} must be an object"]
    problems = [f"missing key {where}{k}" for k in sorted(_PREDICTOR_KEYS - state.keys())]
    unknown = state.keys() - _PREDICTOR_KEYS - _OPTIONAL_PREDICTOR_KEYS
    problems += [f"unknown key {where}{k}" for k in sorted(unknown)]
    if state.get("lm") is not None:
        problems.append(f"{where}lm must be null: the LM comes from a server-side profile")
    for key in ("traces", "train", "demos"):
        if key in state and not isinstance(state[key], list):
            problems.append(f"{where}{key} must be a list")
    fields: dict[str, Any] = predictor.signature.fields
    if "signature" in state:
        problems += _signature_problems(f"{where}signature", len(fields), state["signature"])
    if isinstance(state.get("demos"), list):
        problems += _demo_problems(f"{where}demos", {*fields, *shared}, state["demos"])
    if "fields" in state and not isinstance(state["fields"], dict):
        problems.append(f"{where}fields must be an object")
    return problems


def _signature_problems(where: str, field_count: int, state: Any) -> list[str]:
    if not isinstance(state, dict):
        return [f"{where} must be an object"]
    problems = []
    if set(state) != {"instructions", "fields"}:
        problems.append(f"{where} must have exactly the keys instructions, fields")
    if not isinstance(state.get("instructions"), str):
        problems.append(f"{where}.instructions must be a string")
    saved = state.get("fields")
    if not isinstance(saved, list):
        return [*problems, f"{where}.fields must be a list"]
    if len(saved) != field_count:
        problems.append(f"{where}.fields has {len(saved)} entries, the signature has {field_count}")
    for i, field in enumerate(saved):
        ok = isinstance(field, dict) and set(field) == {"prefix", "description"}
        if not ok or not all(isinstance(v, str) for v in field.values()):
            problems.append(f"{where}.fields[{i}] must be {{prefix: str, description: str}}")
    return problems


def _demo_problems(where: str, field_names: set[str], demos: list[Any]) -> list[str]:
    problems = []
    for i, demo in enumerate(demos):
        if not isinstance(demo, dict):
            problems.append(f"{where}[{i}] must be an object")
            continue
        unknown = set(demo) - field_names - _DEMO_MARKERS
        if unknown:
            problems.append(f"{where}[{i}] has fields not in the signature: {sorted(unknown)}")
    return problems
