"""The dspy.Module of a program version, whatever its shape, built the one way.

A program is one signature run by a module kind (Predict, ChainOfThought), a pipeline of
steps (`runtime.pipeline`), or a plugin module (`runtime.plugins`). Executions,
optimizations and evaluations all build it here from the plan's values, with the
services dspyops lends it (corpus search, tools, reward metrics), then load the
version's saved state, checked (`runtime.modules.load_state`): JSON only, never pickles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from dspyops.runtime.modules import build_module, load_state
from dspyops.runtime.pipeline import Pipeline, Search, StepServices
from dspyops.runtime.plugin_context import Passage as PluginPassage
from dspyops.runtime.plugin_context import Search as PluginSearch
from dspyops.runtime.plugins import build_plugin, plugin_name
from dspyops.runtime.scoring import build_metric
from dspyops.runtime.tools import build_tools
from dspyops.runtime.tools_builtin import Passage
from dspyops.signatures import CompiledSignature
from dspyops.signatures.dspy_signature import dspy_signature

PIPELINE = "Pipeline"


@dataclass(frozen=True)
class ProgramShape:
    """What a plan says about the program's module: the values, not the aggregate."""

    module: str
    compiled: CompiledSignature
    steps: list[dict[str, Any]] | None = None
    outputs: dict[str, str] | None = None
    options: dict[str, Any] | None = None


def build_program(
    shape: ProgramShape,
    state: dict[str, Any] | None = None,
    *,
    search: Search | None = None,
    corpora: dict[str, int] | None = None,
) -> dspy.Module:
    """A fresh module for `shape` with `state` loaded; `search` serves corpora (at the
    versions `corpora` names, which the trace records)."""
    plugin = plugin_name(shape.module)
    if plugin is not None:
        module = build_plugin(
            plugin, shape.options or {}, _plugin_search(search), compiled=shape.compiled
        )
    elif shape.module == PIPELINE:
        services = StepServices(
            search=search, tools=_tools(search), reward=_reward, versions=dict(corpora or {})
        )
        module = Pipeline(shape.compiled.text, shape.steps or [], shape.outputs or {}, services)
    else:
        return build_module(shape.module, dspy_signature(shape.compiled), state)
    if state is not None:
        load_state(module, state)
    return module


def _tools(search: Search | None) -> Callable[[list[str], str | None], list[dspy.Tool]]:
    def tools(names: list[str], corpus: str | None) -> list[dspy.Tool]:
        corpus_search = None
        if corpus is not None and search is not None:
            corpus_search = _bound(search, corpus)
        return build_tools(names, corpus_search=corpus_search)

    return tools


def _bound(search: Search, corpus: str) -> Callable[[str, int], Sequence[Passage]]:
    def search_corpus(query: str, k: int) -> Sequence[Passage]:
        return search(corpus, query, k)

    return search_corpus


def _reward(name: str, outputs: list[str]) -> Callable[[dict[str, Any], Any], float]:
    """A step's reward: a registered metric, scoring the prediction against the step's
    inputs (there are no labels at run time): metrics meant as rewards read those."""
    metric = build_metric(name, {}, outputs)

    def score(inputs: dict[str, Any], prediction: Any) -> float:
        return float(metric(inputs, prediction))

    return score


def _plugin_search(search: Search | None) -> PluginSearch:
    """What a plugin's context gets: passages in the plugin contract's shape."""

    def plugin_search(corpus_id: str, query: str, k: int) -> list[PluginPassage]:
        if search is None:
            raise RuntimeError("corpus search is not available to this program")
        hits = search(corpus_id, query, k)
        return [
            PluginPassage(doc_id=hit.id, text=hit.text, score=float(getattr(hit, "score", 0.0)))
            for hit in hits
        ]

    return plugin_search
