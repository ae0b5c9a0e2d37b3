"""Every table's columns, one line per field: what a page shows is changed here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspyops.api.ui.render import DASH, ms, percent, plain, score, usd, when
from dspyops.api.ui.tables import Column, Row, path


def _aliases(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{alias} → v{number}" for alias, number in sorted(value.items())) or DASH
    return ", ".join(value) if value else DASH


def _splits(value: Any) -> str:
    """`production: v2 90 % / v3 10 %`, one per split alias."""
    if not value:
        return DASH
    return "; ".join(
        f"{alias}: " + " / ".join(f"v{arm['version']} {arm['percent']} %" for arm in split["arms"])
        for alias, split in sorted(value.items())
    )


def _route(value: Any) -> str:
    """How the version was chosen: the alias, and the split's arm when one chose."""
    if not value:
        return DASH
    if value.get("arm") is not None:
        return f"{value['alias']} split → v{value['arm']}"
    return str(value.get("alias") or "named version")


def _version(value: Any) -> str:
    return DASH if value is None else f"v{value}"


def _yes(value: Any) -> str:
    return "yes" if value else ""


def _tokens(row: Row) -> Any:
    usage = row.get("usage")
    return usage["total_tokens"] if usage else None


def _error(row: Row) -> str | None:
    error = row.get("error")
    return error["code"] if error else None


def _changes(value: Any) -> str:
    if not value:
        return DASH
    return "; ".join(
        f"{name}: {plain(change.get('before'))} → {plain(change.get('after'))}"
        for name, change in value.items()
    )


def program_link(row: Row) -> str:
    return path("programs", row["program_id"])


def execution_link(row: Row) -> str:
    return path("executions", row["execution_id"])


def dataset_link(row: Row) -> str | None:
    return path("datasets", row["dataset_id"]) if row.get("dataset_id") else None


def run_link(kind: str, key: str = "run_id") -> Callable[[Row], str | None]:
    return lambda row: path(f"{kind}s", row[key]) if row.get(key) else None


PROGRAM_COLUMNS = (
    Column("Program", "program_id", link=program_link),
    Column("Name", "name"),
    Column("Status", "status"),
    Column("Aliases", "aliases", _aliases),
    Column("Traffic", "splits", _splits),
    Column("Latest", "latest_version", _version, numeric=True),
    Column("Serving", "deployed_version", _version, numeric=True),
    Column("Executions", "executions", lambda n: f"{n:,}", numeric=True),
    Column("Updated", "updated_at", when),
)

VERSION_COLUMNS = (
    Column("Version", "number", _version, numeric=True),
    Column("Source", "source"),
    Column("Serving", "serving", _yes),
    Column("Aliases", "aliases", _aliases),
    Column("Based on", "based_on", _version, numeric=True),
    Column("Optimizer", "optimizer"),
    Column("Optimization", "optimization_id", link=run_link("optimization", "optimization_id")),
    Column("Dataset", "dataset_id", link=dataset_link),
    Column("Metric", "metric"),
    Column("Baseline", "baseline_score", score, numeric=True),
    Column("Optimized", "optimized_score", score, numeric=True),
    Column("Evaluated", "evaluation_score", score, numeric=True),
    Column("Created", "created_at", when),
)

EXECUTION_COLUMNS = (
    Column("Execution", "execution_id", link=execution_link),
    Column("Version", "version", _version, numeric=True),
    Column("Route", "route", _route),
    Column("Status", "status"),
    Column("Error", _error),
    Column("Latency", "latency_ms", ms, numeric=True),
    Column("Tokens", _tokens, numeric=True),
    Column("Cost", "cost_usd", usd, numeric=True),
    Column("Actor", "actor"),
    Column("Requested", "requested_at", when),
)

FEEDBACK_COLUMNS = (
    Column("#", "number", numeric=True),
    Column("Score", "score", score, numeric=True),
    Column("Label", "label"),
    Column("Comment", "comment"),
    Column("Corrected outputs", "corrected_outputs"),
    Column("Actor", "actor"),
    Column("Recorded", "recorded_at", when),
)

_RUN_COMMON = (
    Column("Status", "status"),
    Column("Progress", lambda row: f"{row['step']}/{row['total']}" if row["total"] else None),
    Column("Best score", "best_score", score, numeric=True),
    Column("Dataset", "dataset_id", link=dataset_link),
    Column("Metric", "metric"),
    Column("Actor", "actor"),
    Column("Requested", "requested_at", when),
)

RUN_COLUMNS = {
    "optimization": (
        Column("Optimization", "run_id", link=run_link("optimization")),
        Column("Program", "program_id", link=program_link),
        Column("Optimizer", "optimizer"),
        Column("Base", "base_version", _version, numeric=True),
        Column("Created", "version_created", _version, numeric=True),
        *_RUN_COMMON,
        Column("Baseline", "baseline_score", score, numeric=True),
        Column("Optimized", "optimized_score", score, numeric=True),
    ),
    "evaluation": (
        Column("Evaluation", "run_id", link=run_link("evaluation")),
        Column("Program", "program_id", link=program_link),
        Column("Version", "version", _version, numeric=True),
        *_RUN_COMMON,
        Column("Score", "score", score, numeric=True),
        Column("Errored", "errored", numeric=True),
    ),
}

EXAMPLE_KEYS = ("index", "score", "error")
EXAMPLE_COLUMNS = (
    Column("Example", "index", numeric=True),
    Column("Score", "score", score, numeric=True),
    Column("Error", "error"),
    Column(
        "Details",
        lambda row: {k: v for k, v in row.items() if k not in ("index", "score", "error")} or None,
    ),
)

AUDIT_COLUMNS = (
    Column("When", "occurred_at", when),
    Column("Event", "event_type"),
    Column("Of", lambda row: f"{row['aggregate_kind']} {row['aggregate_id']}"),
    Column("Actor", "actor"),
    Column("Changes", "changes", _changes),
)

DATASET_COLUMNS = (
    Column("Dataset", "dataset_id", link=dataset_link),
    Column("Name", "name"),
    Column("Examples", "size", numeric=True),
    Column("Train", "train_size", numeric=True),
    Column("Dev", "dev_size", numeric=True),
    Column("Dev fraction", "dev_fraction", percent, numeric=True),
    Column("Updated", "updated_at", when),
)

EXAMPLE_ROW_COLUMNS = (
    Column("#", "number", numeric=True),
    Column("Split", "split"),
    Column("Example", "example"),
    Column("Added in", "dataset_version", _version, numeric=True),
    Column(
        "From execution",
        "source_execution_id",
        link=lambda row: (
            path("executions", row["source_execution_id"]) if row["source_execution_id"] else None
        ),
    ),
    Column("Actor", "actor"),
    Column("Added", "added_at", when),
)

CORPUS_COLUMNS = (
    Column("Corpus", "corpus_id"),
    Column("Name", "name"),
    Column("Version", "version", _version, numeric=True),
    Column("Documents", "size", numeric=True),
    Column("Updated", "updated_at", when),
)

STATUS_COUNT_COLUMNS = (
    Column("Status", "status"),
    Column("Count", "n", lambda n: f"{n:,}", numeric=True),
)
