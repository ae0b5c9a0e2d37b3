"""Tools by name: built-ins, entry-point plugins (found, broken, refused), checks, building.

Plugins come from a distribution's metadata written to a temporary folder on
``sys.path`` (``tests.support.tool_plugin.tool_distribution``): ``entry_points()``
finds them as it finds a pip-installed package's, and ``EntryPoint.load()`` really
imports ``tests.support.tool_plugin``. Nothing is installed into the shared venv.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from dspyops.runtime import tools
from dspyops.runtime.tools import (
    ENTRY_POINT_GROUP,
    ToolsError,
    build_tools,
    check_tools,
    load_registry,
    tool_names,
    unavailable_tools,
)
from dspyops.runtime.tools_builtin import MAX_PASSAGE_CHARS, NO_PASSAGES
from tests.support.tool_plugin import MODULE, tool_distribution


def point(name: str, attr: str, module: str = MODULE) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attr}", group=ENTRY_POINT_GROUP)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    tools.forget_registry()
    yield
    tools.forget_registry()


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution declaring good, broken and refused tools, found on sys.path."""
    declared = {
        "word_count": f"{MODULE}:word_count",
        "unit_price": f"{MODULE}:unit_price",
        "broken": "tests.support.no_such_module:tool",
        "not_a_tool": f"{MODULE}:NOT_A_TOOL",
        "arithmetic": f"{MODULE}:arithmetic",
    }
    monkeypatch.syspath_prepend(str(tool_distribution(tmp_path, declared)))


@dataclass(frozen=True)
class Hit:
    id: str
    text: str


def test_without_plugins_the_built_ins_are_the_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "entry_points", lambda group: [])
    assert tool_names() == ["arithmetic", "corpus_search"]
    assert unavailable_tools() == []
    assert check_tools(["arithmetic", "corpus_search"]) == []


def test_an_installed_tool_is_found_and_broken_ones_are_listed_without_breaking_it(
    installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dspyops.runtime.tools"):
        assert tool_names() == ["arithmetic", "corpus_search", "unit_price", "word_count"]
        tool_names()
        check_tools(["broken"])
    reasons = {u.name: u.reason for u in unavailable_tools()}
    assert reasons == {
        "arithmetic": "'arithmetic' is a built-in tool and cannot be replaced",
        "broken": "failed to import (see the worker log)",
        "not_a_tool": "not callable (a int)",
    }
    # Logged once per process, with the entry point it came from.
    logged = [r for r in caplog.records if r.name == "dspyops.runtime.tools"]
    assert len(logged) == 3
    assert any("tests.support.no_such_module:tool" in r.getMessage() for r in logged)
    (tool,) = build_tools(["word_count"])
    assert tool(text="three little words") == 3


def test_a_plugin_cannot_shadow_a_built_in(installed: None) -> None:
    (tool,) = build_tools(["arithmetic"])
    assert tool(expression="6 * 7") == "42"  # the built-in's answer, computed
    assert tool(expression="2 + 2") == "4"  # not the plugin's constant "42"
    # The refused plugin is listed, the built-in name stays valid for steps.
    assert "arithmetic" in {u.name for u in unavailable_tools()}
    assert check_tools(["arithmetic"]) == []


def test_step_tool_names_are_checked_with_locations(installed: None) -> None:
    errors = check_tools(["word_count", "search_web", "broken", "word_count", "finish"])
    assert [(e["loc"], e["type"]) for e in errors] == [
        ([1], "unknown_tool"),
        ([2], "unavailable_tool"),
        ([3], "duplicate_tool"),
        ([4], "unknown_tool"),
    ]
    assert errors[0]["msg"] == (
        "unknown tool 'search_web'; known: arithmetic, corpus_search, unit_price, word_count"
    )
    assert errors[1]["msg"] == "tool 'broken' is unavailable: failed to import (see the worker log)"
    assert errors[3]["msg"].startswith("'finish' is ReAct's own")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (point("fetch_page", "fetch_page"), "async functions are not supported"),
        (point("no_docstring", "no_docstring"), "no docstring"),
        (point("no_hints", "no_hints"), "parameter 'text' has no type hint"),
        (point("finish", "word_count"), "ReAct's own last step"),
        (point("word-count", "word_count"), "a tool name is a Python identifier"),
        (point("corpus_search", "word_count"), "built-in tool"),
    ],
)
def test_what_breaks_the_tool_contract_is_unavailable(entry: EntryPoint, reason: str) -> None:
    registry = load_registry([entry, point("word_count", "word_count")])
    assert list(registry.plugins) == ["word_count"]
    assert reason in registry.unavailable[entry.name].reason


def test_a_name_declared_twice_is_ambiguous_and_refused() -> None:
    registry = load_registry([point("count", "word_count"), point("count", "unit_price")])
    assert registry.plugins == {}
    assert registry.unavailable["count"].reason == "declared by 2 entry points"


def test_what_the_lm_sees_is_the_name_the_docstring_and_the_argument_schema(
    installed: None,
) -> None:
    price, calc = build_tools(["unit_price", "arithmetic"])
    assert price.name == "unit_price"
    assert price.desc == "Price of one unit: total divided by quantity."
    assert price.args == {
        "total": {"type": "number"},
        "quantity": {"type": "integer", "default": 1},
    }
    assert calc.args == {"expression": {"type": "string"}}
    assert "Evaluate an arithmetic expression" in str(calc)


def test_corpus_search_needs_a_search_function_and_returns_the_top_passages() -> None:
    with pytest.raises(ToolsError) as refused:
        build_tools(["arithmetic", "corpus_search"])
    assert refused.value.errors == [
        {
            "loc": [1],
            "msg": "corpus_search needs a corpus to search and the step gives none",
            "type": "corpus_required",
        }
    ]
    asked: list[tuple[str, int]] = []

    def search(query: str, k: int) -> list[Hit]:
        asked.append((query, k))
        return [Hit("doc-1", "Paris is\n the capital."), Hit("doc-2", "x" * 5000)][:k]

    (tool,) = build_tools(["corpus_search"], corpus_search=search, corpus_k=2)
    assert "top 2 passages" in tool.desc
    found = tool(query="  capital of France ")
    assert asked == [("capital of France", 2)]
    first, second = found.split("\n\n")
    assert first == "[doc-1] Paris is the capital."
    assert len(second) == len("[doc-2] ") + MAX_PASSAGE_CHARS
    (empty,) = build_tools(["corpus_search"], corpus_search=lambda q, k: [])
    assert empty(query="nothing") == NO_PASSAGES
    with pytest.raises(ValueError, match="empty query"):
        empty(query="  ")


def test_corpus_k_out_of_range_is_reported() -> None:
    with pytest.raises(ToolsError) as refused:
        build_tools(["corpus_search"], corpus_search=lambda q, k: [], corpus_k=0)
    assert refused.value.errors[0]["type"] == "corpus_k_range"


async def test_a_blocking_tool_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_registry([point("nap", "nap")])
    monkeypatch.setattr(tools, "registry", lambda: registry)
    (tool,) = build_tools(["nap"])
    start = time.monotonic()
    results = await asyncio.gather(*(tool.acall(seconds=0.3) for _ in range(3)))
    assert results == ["awake"] * 3
    # Three 0.3 s naps on the event loop would take 0.9 s.
    assert time.monotonic() - start < 0.7
