"""An execution's trace (`GET /executions/{id}`) drawn as a tree: one line per span."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.tree import Tree


def span_tree(span: dict[str, Any], tree: Tree | None = None) -> Tree:
    label = escape(span_label(span))
    node = Tree(label) if tree is None else tree.add(label)
    for child in span.get("children", []):
        span_tree(child, node)
    return node


def span_label(span: dict[str, Any]) -> str:
    latency = span.get("latency_ms")
    kind, name = span["kind"], span.get("name") or ""
    name = kind if name in ("", kind) else f"{kind} {name}"
    parts = [name, "-" if latency is None else f"{latency:.1f} ms"]
    if span["kind"] == "retrieval":
        parts.append(
            f"{span.get('corpus')} v{span.get('corpus_version')} -> {span.get('document_ids')}"
        )
    usage = span.get("usage") or {}
    if usage.get("total_tokens"):
        parts.append(f"{usage['total_tokens']} tokens")
    if span.get("error"):
        parts.append(f"error {span['error'].get('type')}")
    return ", ".join(parts)
