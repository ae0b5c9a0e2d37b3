"""Tools by name: the ones a ReAct step may call, built-in and installed by the operator.

A step names its tools, never sends code. Built in (``runtime.tools_builtin``):
``arithmetic`` and ``corpus_search`` (which needs the step's corpus). The operator adds
tools as Python entry points in the group ``dspyops.tools``: the entry point's name is
the tool's name and its object a plain (not async) function with a docstring and a
type hint on every parameter; the docstring and the hints are what the LM sees.

The entry points are read and imported once per process (installing a tool needs a
restart). One that fails to import, is not such a function, cannot be described by
DSPy, has a name that is not an identifier, is declared twice, or takes a built-in
name (or ``finish``, which ReAct adds itself) is left out: logged once with the
details, listed by ``unavailable_tools()``, and refused by name in ``check_tools``,
while every other tool stays usable.

``build_tools`` gives ``dspy.Tool`` objects whose async call (``acall``, what ReAct's
``aforward`` uses) runs the function in a worker thread: a tool that blocks (HTTP, disk)
then stalls only its own execution, not the event loop every execution shares.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import dspy
from dspy.utils.callback import with_callbacks

from dspyops.runtime.tools_builtin import (
    MAX_K,
    SearchFn,
    arithmetic,
    corpus_search_desc,
    make_corpus_search,
)

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dspyops.tools"
ARITHMETIC = "arithmetic"
CORPUS_SEARCH = "corpus_search"
BUILTIN_NAMES = frozenset({ARITHMETIC, CORPUS_SEARCH})
# ReAct adds a tool called "finish" itself and would silently replace one of ours.
REACT_FINISH = "finish"
DEFAULT_K = 5
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

ErrorDict = dict[str, Any]


@dataclass(frozen=True)
class Unavailable:
    """An installed entry point that is not a usable tool; ``reason`` is safe to show."""

    name: str
    target: str
    reason: str


@dataclass(frozen=True)
class Registry:
    plugins: Mapping[str, Callable[..., Any]]
    unavailable: Mapping[str, Unavailable]


class ToolsError(ValueError):
    """Tools a step names cannot be built; ``errors`` are ``[{loc, msg, type}]``."""

    def __init__(self, errors: list[ErrorDict]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e["msg"]) for e in errors))


class _Tool(dspy.Tool):
    """A ``dspy.Tool`` whose async call runs the sync function off the event loop.

    Same validation and the same callbacks (``on_tool_start``/``on_tool_end``) as
    ``dspy.Tool.acall``; ``asyncio.to_thread`` carries the DSPy context along.
    """

    @with_callbacks
    async def acall(self, **kwargs: Any) -> Any:
        parsed = self._validate_and_parse_args(**kwargs)
        return await asyncio.to_thread(self.func, **parsed)


# --- the registry ---------------------------------------------------------------------


def load_registry(points: Iterable[EntryPoint]) -> Registry:
    """Import every entry point, keep the usable tools, log and list the rest."""
    by_name: dict[str, list[EntryPoint]] = {}
    for point in points:
        by_name.setdefault(point.name, []).append(point)
    plugins: dict[str, Callable[..., Any]] = {}
    unavailable: dict[str, Unavailable] = {}
    for name, declared in sorted(by_name.items()):
        fn, reason = _load(name, declared)
        if fn is not None:
            plugins[name] = fn
            continue
        target = ", ".join(p.value for p in declared)
        unavailable[name] = Unavailable(name, target, reason)
    return Registry(plugins, unavailable)


_loaded: Registry | None = None
_loading = threading.Lock()


def registry() -> Registry:
    """The installed tools, read once per process (so each problem is logged once)."""
    global _loaded
    with _loading:  # the worker's store threads may ask at the same moment
        if _loaded is None:
            _loaded = load_registry(entry_points(group=ENTRY_POINT_GROUP))
        return _loaded


def forget_registry() -> None:
    """Read the entry points again on next use (tests; a process normally never does)."""
    global _loaded
    with _loading:
        _loaded = None


def _load(name: str, declared: list[EntryPoint]) -> tuple[Callable[..., Any] | None, str]:
    target = declared[0].value
    if len(declared) > 1:
        return _refuse(name, target, f"declared by {len(declared)} entry points")
    if name in BUILTIN_NAMES:
        return _refuse(name, target, f"{name!r} is a built-in tool and cannot be replaced")
    if name == REACT_FINISH:
        return _refuse(name, target, "'finish' is ReAct's own last step, not a tool name")
    if not _TOOL_NAME.fullmatch(name):
        return _refuse(name, target, "a tool name is a Python identifier of 1-64 characters")
    try:
        fn = declared[0].load()
    except Exception:
        logger.exception("tool %r: entry point %s failed to import", name, target)
        return None, "failed to import (see the worker log)"
    problem = contract_problem(name, fn)
    if problem:
        return _refuse(name, target, problem)
    return fn, ""


def _refuse(name: str, target: str, reason: str) -> tuple[None, str]:
    logger.warning("tool %r (entry point %s) is unavailable: %s", name, target, reason)
    return None, reason


def contract_problem(name: str, fn: Any) -> str:
    """Why ``fn`` cannot be a tool (empty when it can): the contract in the docstring."""
    if not callable(fn):
        return f"not callable (a {type(fn).__name__})"
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return "async functions are not supported: a tool is a plain function"
    if not (inspect.getdoc(fn) or "").strip():
        return "no docstring: the docstring is the description the LM reads"
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return "its signature cannot be read"
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            return f"parameter {parameter.name!r} cannot be passed by name"
        if parameter.annotation is parameter.empty:
            return f"parameter {parameter.name!r} has no type hint"
    try:
        _describe(name, fn)
    except Exception as exc:
        return f"DSPy cannot describe it ({type(exc).__name__})"
    return ""


def _describe(name: str, fn: Callable[..., Any], desc: str | None = None) -> dspy.Tool:
    return _Tool(fn, name=name, desc=desc or inspect.getdoc(fn))


# --- what the pipeline calls ----------------------------------------------------------


def tool_names() -> list[str]:
    """Every usable tool name, built-in and installed, sorted."""
    return sorted(BUILTIN_NAMES | set(registry().plugins))


def unavailable_tools() -> list[Unavailable]:
    """Installed entry points left out, with why."""
    return list(registry().unavailable.values())


def check_tools(names: Sequence[str]) -> list[ErrorDict]:
    """Problems with the tool names of one step, ``loc`` = ``[index]`` in ``names``."""
    known = registry()
    errors: list[ErrorDict] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        problem = _name_problem(name, known, seen)
        if problem is not None:
            errors.append(_error(index, *problem))
        seen.add(name)
    return errors


def _name_problem(name: str, known: Registry, seen: set[str]) -> tuple[str, str] | None:
    """(msg, type) of what is wrong with one name, or None."""
    if name in seen:
        return f"tool {name!r} is named twice", "duplicate_tool"
    if name in BUILTIN_NAMES or name in known.plugins:
        return None
    if name in known.unavailable:
        return f"tool {name!r} is unavailable: {known.unavailable[name].reason}", "unavailable_tool"
    listed = ", ".join(tool_names())
    if name == REACT_FINISH:
        return f"'finish' is ReAct's own, never named; known: {listed}", "unknown_tool"
    return f"unknown tool {name!r}; known: {listed}", "unknown_tool"


def build_tools(
    names: Sequence[str], *, corpus_search: SearchFn | None = None, corpus_k: int = DEFAULT_K
) -> list[dspy.Tool]:
    """Fresh ``dspy.Tool`` objects for one step, in the order named.

    ``corpus_search`` is the search of the step's corpus (``search(query, k)``), needed
    when the step names ``corpus_search``; ``corpus_k`` passages are returned per call.
    Raises ToolsError with every problem.
    """
    errors = check_tools(names)
    if CORPUS_SEARCH in names:
        index = list(names).index(CORPUS_SEARCH)
        if corpus_search is None:
            msg = "corpus_search needs a corpus to search and the step gives none"
            errors.append(_error(index, msg, "corpus_required"))
        if not 1 <= corpus_k <= MAX_K:
            msg = f"corpus_search returns 1 to {MAX_K} passages, not {corpus_k}"
            errors.append(_error(index, msg, "corpus_k_range"))
    if errors:
        raise ToolsError(errors)
    return [_build(name, corpus_search, corpus_k) for name in names]


def _build(name: str, search: SearchFn | None, k: int) -> dspy.Tool:
    if name == ARITHMETIC:
        return _describe(name, arithmetic)
    if name == CORPUS_SEARCH:
        assert search is not None  # build_tools checked
        return _describe(name, make_corpus_search(search, k=k), corpus_search_desc(k))
    return _describe(name, registry().plugins[name])


def _error(index: int, msg: str, kind: str) -> ErrorDict:
    return {"loc": [index], "msg": msg, "type": kind}
