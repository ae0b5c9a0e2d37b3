"""The trace tree (demo, `dspyops execution`): a line per span, what matters for its kind;
an execution's cost as people read it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from rich.console import Console

from dspyops.cli import demo_rag, demo_steps
from dspyops.cli.read_api import ReadApiError
from dspyops.cli.read_commands import usd
from dspyops.cli.trace_tree import span_label, span_tree


def test_labels_name_the_kind_latency_corpus_tokens_and_error() -> None:
    assert span_label({"kind": "program", "name": "program", "latency_ms": 9.54}) == (
        "program, 9.5 ms"
    )
    retrieval = {
        "kind": "retrieval",
        "name": "retrieve",
        "latency_ms": 2.0,
        "corpus": "facts",
        "corpus_version": 3,
        "document_ids": ["d1"],
    }
    assert span_label(retrieval) == "retrieval retrieve, 2.0 ms, facts v3 -> ['d1']"
    lm = {"kind": "lm", "name": "openai/m", "latency_ms": None, "usage": {"total_tokens": 37}}
    assert span_label(lm) == "lm openai/m, -, 37 tokens"
    failed = {"kind": "step", "name": "answer", "latency_ms": 1.0, "error": {"type": "ValueError"}}
    assert span_label(failed) == "step answer, 1.0 ms, error ValueError"


def test_the_tree_nests_children_and_escapes_markup() -> None:
    trace = {
        "kind": "program",
        "latency_ms": 3.0,
        "children": [{"kind": "step", "name": "[bold]x", "latency_ms": 1.0, "children": []}],
    }
    console = Console(width=80, record=True)
    console.print(span_tree(trace))
    assert console.export_text().splitlines() == ["program, 3.0 ms", "└── step [bold]x, 1.0 ms"]


def test_the_demo_waits_for_the_execution_to_complete_before_drawing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The projector may have applied the request but not yet its completion: the read
    # API then serves status "requested" and no trace.
    monkeypatch.setattr(demo_steps.time, "sleep", lambda s: None)  # where the waiting is
    served = iter(
        [
            ReadApiError("404", "not yet"),
            {"status": "requested", "trace": None},
            {"status": "succeeded", "trace": {"kind": "program", "name": "program"}},
        ]
    )

    class Api:
        def get(self, path: str) -> Any:
            reply = next(served)
            if isinstance(reply, Exception):
                raise reply
            return reply

    console = Console(record=True, width=80)
    run = demo_rag.RagRun("c", "p", "d", executed=cast(Any, SimpleNamespace(execution_id="e")))

    detail = demo_rag.RagTrace(cast(Any, Api()), console).show(run)

    assert detail["status"] == "succeeded"
    assert "program" in console.export_text()


def test_a_cost_reads_as_dollars_and_unknown_is_said() -> None:
    assert usd(None) == "cost unknown"
    assert usd(0.0) == "$0.000000"
    assert usd(0.000123) == "$0.000123"
    assert usd(1.5) == "$1.50"
