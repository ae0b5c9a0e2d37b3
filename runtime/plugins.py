"""Plugin modules: a team's own ``dspy.Module`` classes, found by entry point name.

A program registered with ``module: "plugin:<name>"`` runs the class that the entry
point ``<name>`` of the group ``dspyops.modules`` names: a command names an installed
entry point, never sends code. Entry points are read once per process, so installing
a plugin takes a worker restart. The contract for a plugin class (docs/plugins.md):

- it subclasses ``dspy.Module``; its class attribute ``dspyops_signature`` is its
  signature in dspyops' grammar (docs/signatures.md), e.g. ``"question: str -> answer:
  str"``: the program's input and output fields come from it;
- the runtime builds it as ``cls(context)``, a ``PluginContext`` with what dspyops
  lends: ``search`` over a corpus, the compiled DSPy ``signature``, the ``options``.
  Keep the context itself: DSPy deep-copies modules, and only the context is shared;
- ``Options``, optional, is a pydantic model for the program's options object; a
  plugin without it takes no options;
- ``forward(**inputs)`` and ``aforward(**inputs)`` return a ``dspy.Prediction`` with
  the signature's outputs, keeping no per-call state on ``self`` (one built module
  serves many calls, concurrently);
- every ``dspy.Parameter`` it holds is a ``dspy.Predict`` (a ChainOfThought holds one):
  state is saved per predictor, as JSON, and nothing else is kept.

For the pipeline core: ``plugin_names``, ``plugin_info``, ``check_plugin``,
``build_plugin``; errors in the ``{loc, msg, type}`` shape.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import dspy
from pydantic import BaseModel, ConfigDict, ValidationError

from dspyops.runtime.plugin_context import Passage, PluginContext, Search
from dspyops.signatures import CompiledSignature, SignatureError, compile_signature
from dspyops.signatures.dspy_signature import dspy_signature

ENTRY_POINT_GROUP = "dspyops.modules"
MODULE_PREFIX = "plugin:"
SIGNATURE_ATTRIBUTE = "dspyops_signature"

ErrorDict = dict[str, Any]

__all__ = [
    "ENTRY_POINT_GROUP",
    "Passage",
    "PluginContext",
    "PluginError",
    "PluginInfo",
    "Search",
    "build_plugin",
    "check_plugin",
    "plugin_info",
    "plugin_name",
    "plugin_names",
]


@dataclass(frozen=True)
class PluginInfo:
    """What a program version records about the plugin that ran it.

    ``source_sha256`` is the SHA-256 of the UTF-8 text of the Python module that defines
    the class (``inspect.getsource`` of ``sys.modules[cls.__module__]``), read when the
    plugin is loaded: a change to that file shows even without a new version number;
    a change in another module of the distribution shows only through the version.
    ``signature`` is the canonical form of the plugin's ``dspyops_signature``.
    """

    name: str
    distribution: str
    distribution_version: str
    source_sha256: str
    signature: str
    entry_point: str


class PluginError(ValueError):
    """A plugin cannot be used as asked; ``errors`` are ``[{loc, msg, type}]``."""

    def __init__(self, errors: list[ErrorDict]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e["msg"]) for e in errors))


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class _Plugin:
    cls: type[dspy.Module]
    options_model: type[BaseModel] | None
    compiled: CompiledSignature
    info: PluginInfo


def plugin_name(module: str) -> str | None:
    """``"plugin:multihop"`` -> ``"multihop"``; None for a built-in module kind."""
    return module.removeprefix(MODULE_PREFIX) if module.startswith(MODULE_PREFIX) else None


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, tuple[EntryPoint, ...]]:
    """Entry points by name, read once per process (installing one needs a restart)."""
    found: dict[str, tuple[EntryPoint, ...]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = (*found.get(ep.name, ()), ep)
    return found


def plugin_names() -> list[str]:
    """Every installed entry point name, usable or not (``check_plugin`` says which)."""
    return sorted(_entry_points())


def plugin_info(name: str) -> PluginInfo:
    """Raises PluginError when the plugin is not installed or cannot be loaded."""
    return _plugin(name).info


def check_plugin(
    name: str, options: Any, *, options_loc: Sequence[str | int] = ("module_options",)
) -> list[ErrorDict]:
    """Every reason ``build_plugin(name, options, ...)`` would refuse; empty when none.

    Plugin problems point at ``module``, options problems at ``options_loc``. It builds
    the plugin once (its search refuses to run): a failing constructor shows here too.
    """
    try:
        build_plugin(name, options, _no_search, options_loc=options_loc)
    except PluginError as exc:
        return exc.errors
    return []


def build_plugin(
    name: str,
    options: Any,
    search: Search,
    *,
    compiled: CompiledSignature | None = None,
    options_loc: Sequence[str | int] = ("module_options",),
) -> dspy.Module:
    """A fresh module of plugin ``name``; raises PluginError.

    ``compiled`` gives the program's instructions and field descriptions; its fields
    must be the plugin's own (default: the plugin's signature as it is).
    """
    plugin = _plugin(name)
    if compiled is not None and compiled.text != plugin.compiled.text:
        raise PluginError(
            [
                _error(
                    f"plugin {name!r} has the signature {plugin.compiled.text!r}, "
                    f"not {compiled.text!r}",
                    "plugin_signature_mismatch",
                )
            ]
        )
    parsed = _options(plugin, options, tuple(options_loc))
    context = PluginContext(search, dspy_signature(compiled or plugin.compiled), parsed)
    try:
        module = plugin.cls(context)
    except Exception as exc:  # third-party code: any failure is the plugin's, reported
        message = f"plugin {name!r} failed to build: {type(exc).__name__}: {exc}"
        raise PluginError([_error(message, "plugin_build_failed")]) from exc
    others = [
        f"{path} ({type(param).__name__})"
        for path, param in module.named_parameters()
        if not isinstance(param, dspy.Predict)
    ]
    if others:
        message = f"plugin {name!r} holds parameters that are not predictors: {', '.join(others)}"
        raise PluginError([_error(message, "plugin_invalid")])
    return module


def _no_search(corpus_id: str, query: str, k: int) -> list[Passage]:
    raise RuntimeError("a plugin may search when it runs, not while it is built")


def _plugin(name: str) -> _Plugin:
    # Unknown names are answered before the cache: only installed names are cached.
    if name not in _entry_points():
        installed = ", ".join(plugin_names()) or "none"
        message = (
            f"unknown plugin module {name!r}: a command can only name installed entry "
            f"points (group {ENTRY_POINT_GROUP}; installed: {installed})"
        )
        raise PluginError([_error(message, "unknown_plugin")])
    loaded = _load(name)
    if isinstance(loaded, tuple):
        raise PluginError(copy.deepcopy(list(loaded)))
    return loaded


@cache
def _load(name: str) -> _Plugin | tuple[ErrorDict, ...]:
    """The class behind an installed name, loaded once; failures are kept, not retried."""
    candidates = _entry_points()[name]
    if len(candidates) > 1:
        owners = ", ".join(sorted(_distribution(ep)[0] for ep in candidates))
        message = f"plugin {name!r} is declared by more than one distribution: {owners}"
        return (_error(message, "plugin_ambiguous"),)
    (ep,) = candidates
    where = f"plugin {name!r} ({ep.name} = {ep.value})"
    try:
        cls = ep.load()
    except Exception as exc:  # import-time code of a third party may raise anything
        message = f"{where} could not be loaded: {type(exc).__name__}: {exc}"
        return (_error(message, "plugin_unloadable"),)
    problems = _class_problems(cls)
    if problems:
        return tuple(_error(f"{where} {p}", "plugin_invalid") for p in problems)
    try:
        compiled = compile_signature(getattr(cls, SIGNATURE_ATTRIBUTE))
    except SignatureError as exc:
        message = f"{where}: {SIGNATURE_ATTRIBUTE} is not a dspyops signature: {exc}"
        return (_error(message, "plugin_signature"),)
    try:
        source = inspect.getsource(sys.modules[cls.__module__])
    except (OSError, TypeError, KeyError) as exc:
        message = f"{where}: the source of {cls.__module__} cannot be read ({exc})"
        return (_error(message, "plugin_invalid"),)
    distribution, version = _distribution(ep)
    info = PluginInfo(
        name=name,
        distribution=distribution,
        distribution_version=version,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        signature=compiled.text,
        entry_point=ep.value,
    )
    return _Plugin(cls, getattr(cls, "Options", None), compiled, info)


def _class_problems(cls: Any) -> list[str]:
    if not (isinstance(cls, type) and issubclass(cls, dspy.Module)):
        return [f"is not a dspy.Module subclass but {cls!r}"]
    problems = [
        f"has no {method} method" for method in ("forward", "aforward") if not hasattr(cls, method)
    ]
    if not isinstance(getattr(cls, SIGNATURE_ATTRIBUTE, None), str):
        problems.append(f"has no {SIGNATURE_ATTRIBUTE} text")
    model = getattr(cls, "Options", None)
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        problems.append("has an Options attribute that is not a pydantic model")
    return problems


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else ("", "")


def _options(plugin: _Plugin, options: Any, loc: tuple[str | int, ...]) -> Any:
    """The plugin's Options instance; a plugin without the model takes no options (None)."""
    raw = {} if options is None else options
    if not isinstance(raw, Mapping):
        error = {"loc": [*loc], "msg": "options must be an object", "type": "dict_type"}
        raise PluginError([error])
    try:
        parsed = (plugin.options_model or _NoOptions).model_validate(dict(raw))
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False, include_input=False)
        errors = [{"loc": [*loc, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in details]
        raise PluginError(errors) from None
    return None if plugin.options_model is None else parsed


def _error(message: str, kind: str) -> ErrorDict:
    """A problem with the plugin itself: it points at the command's ``module``."""
    return {"loc": ["module"], "msg": message, "type": kind}
