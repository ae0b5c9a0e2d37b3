"""Every table's columns, one line per field: what a page shows is changed here.

This module is long because it is every table of the console in one place, on purpose:
a field added or renamed is one line here, whatever the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspyops.api.ui.render import DASH, ms, percent, plain, score, usd, when
from dspyops.api.ui.tables import Column, Row, path


def _aliases(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{alias} → v{number}" for alias, number in sorted(value.items())) or DASH
    return ", ".join(value) if value else DASH


def traffic(value: Any) -> str:
    """`production: v2 90 % / v3 10 %`, one per split alias."""
    if not value:
        return DASH
    return "; ".join(
        f"{alias}: " + " / ".join(f"v{arm['version']} {arm['percent']} %" for arm in split["arms"])
        for alias, split in sorted(value.items())
    )


def online_evaluation(value: Any) -> str:
    """`10 % of executions judged by grader@production` (SetOnlineEvaluation), or a dash."""
    if not value:
        return DASH
    judge = value["judge"] + (f"@{value['alias']}" if value.get("alias") else "")
    return f"{plain(value['sample_percent'])} % of executions judged by {judge}"


def _arms(value: Any) -> str:
    return " / ".join(f"v{arm['version']} {arm['percent']} %" for arm in value or [])


def _guard(value: Any) -> str:
    """`over 10.0 % failed of the last 50`: when the split takes a candidate out."""
    if not value:
        return DASH
    return f"over {value['max_error_rate']:.1%} failed of the last {value['window']}"


def _served(value: Any) -> str:
    """What served after a serving change: `production → v1; staging → v3 (v2 90 % / v3 10 %)`."""
    if not value:
        return DASH
    splits = value.get("splits") or {}
    parts = []
    for alias, version in sorted(value.get("aliases", {}).items()):
        shares = splits.get(alias)
        arms = " / ".join(f"v{v} {p} %" for v, p in sorted(shares.items())) if shares else ""
        parts.append(f"{alias} → v{version}" + (f" ({arms})" if arms else ""))
    return "; ".join(parts) or "nothing"


def _difference(value: Any, interval: Any, unit: Callable[[float], str]) -> str:
    """`+5.0 % [-2.1 %, +12.1 %]`: a difference and its 95 % interval (when measured)."""
    if value is None:
        return DASH
    text = unit(value)
    if interval is None:
        return text
    low, high = interval
    return f"{text} [{unit(low)}, {unit(high)}]"


def _signed_percent(value: float) -> str:
    return f"{value * 100:+.1f} %"


def _signed_ms(value: float) -> str:
    return f"{value:+,.1f} ms"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _signed_score(value: float | None) -> str:
    return DASH if value is None else _signed(value)


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
    Column("Traffic", "splits", traffic),
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

SPLIT_COLUMNS = (
    Column("Alias", "alias"),
    Column("Arms", "arms", _arms),
    Column("Guard", "guard", _guard),
)

# One row of api.arms.difference: a version against the baseline (the serving version).
COMPARISON_COLUMNS = (
    Column("Version", "version", _version, numeric=True),
    Column("Against", "baseline_version", _version, numeric=True),
    Column(
        "Success rate difference",
        lambda r: _difference(r["success_rate_diff"], r["success_rate_diff_ci95"], _signed_percent),
        numeric=True,
    ),
    Column(
        "Mean latency difference",
        lambda r: _difference(
            r["latency_mean_diff_ms"], r["latency_mean_diff_ms_ci95"], _signed_ms
        ),
        numeric=True,
    ),
    Column(
        "Feedback score difference",
        lambda r: _difference(r["feedback_score_diff"], r["feedback_score_diff_ci95"], _signed),
        numeric=True,
    ),
)

SERVING_COLUMNS = (
    Column("When", "occurred_at", when),
    Column("Change", "kind"),
    Column("Alias", "alias"),
    Column("From", "previous_version", _version, numeric=True),
    Column("To", "version", _version, numeric=True),
    Column("Serving after", "state", _served),
    Column("Reason", "reason"),
    Column("Actor", "actor"),
)

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

DEAD_LETTER_COLUMNS = (
    Column("Reason", "reason"),
    Column("Count", "n", numeric=True),
)

WORKER_MEMBER_COLUMNS = (
    Column("Client id", "client_id"),
    Column("Host", "host"),
)

TOPIC_LAG_COLUMNS = (
    Column("Topic", "topic"),
    Column("Partitions", "partitions", numeric=True),
    Column("Lag (records)", "lag", lambda n: f"{n:,}", numeric=True),
)

STATUS_COUNT_COLUMNS = (
    Column("Status", "status"),
    Column("Count", "n", lambda n: f"{n:,}", numeric=True),
)


def compare_columns(a: int, b: int, *, with_inputs: bool) -> tuple[Column, ...]:
    """Two versions' results on one example (api.ui.compare), each side's score, error
    and outputs; the example's inputs first when known."""

    def side(key: str, field: str) -> Callable[[Row], Any]:
        return lambda row: row[key].get(field)

    return (
        Column("Example", "index", numeric=True),
        *((Column("Inputs", "example"),) if with_inputs else ()),
        Column(f"v{a} score", side("a", "score"), score, numeric=True),
        Column(f"v{b} score", side("b", "score"), score, numeric=True),
        Column(f"v{b} minus v{a}", "diff", _signed_score, numeric=True),
        Column(f"v{a} outputs", side("a", "outputs")),
        Column(f"v{b} outputs", side("b", "outputs")),
        Column(f"v{a} error", side("a", "error")),
        Column(f"v{b} error", side("b", "error")),
    )
