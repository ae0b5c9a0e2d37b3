"""Versions side by side: each one's difference from a baseline version, with 95 % intervals.

What a traffic split is for: is the candidate better or worse than the control, and by
how much can we tell yet? Each difference (candidate - baseline) comes with a 95 %
interval from the normal approximation: Wald's for the success rate, Welch's standard
error for the means (latency, feedback score). With few executions per arm (under ~30)
the normal approximation makes the interval too narrow; it is None below 2 per arm,
where no spread can be measured.
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile

Interval = tuple[float, float]


def difference(row: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """`row`'s differences from `baseline` (stats rows of `views.execution_stats`)."""
    rate, rate_ci = _rates(row, baseline)
    latency, latency_ci = _means(row, baseline, "latency_n", "latency_mean_ms", "latency_var")
    score, score_ci = _means(
        row, baseline, "feedback_scored", "feedback_score_mean", "feedback_score_var"
    )
    return {
        "version": row["k"],
        "baseline_version": baseline["k"],
        "success_rate_diff": rate,
        "success_rate_diff_ci95": rate_ci,
        "latency_mean_diff_ms": latency,
        "latency_mean_diff_ms_ci95": latency_ci,
        "feedback_score_diff": score,
        "feedback_score_diff_ci95": score_ci,
    }


def _rates(row: dict[str, Any], baseline: dict[str, Any]) -> tuple[float | None, Interval | None]:
    n1, n0 = _finished(row), _finished(baseline)
    if not n1 or not n0:
        return None, None
    p1, p0 = row["succeeded"] / n1, baseline["succeeded"] / n0
    diff = p1 - p0
    if n1 < 2 or n0 < 2:
        return diff, None
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    return diff, (diff - Z95 * se, diff + Z95 * se)


def _means(
    row: dict[str, Any], baseline: dict[str, Any], count: str, mean: str, var: str
) -> tuple[float | None, Interval | None]:
    if row[mean] is None or baseline[mean] is None:
        return None, None
    diff = float(row[mean]) - float(baseline[mean])
    n1, n0 = int(row[count]), int(baseline[count])
    if n1 < 2 or n0 < 2 or row[var] is None or baseline[var] is None:
        return diff, None
    # A variance is never below 0 (one computed from sums may round a hair below).
    se = math.sqrt(max(0.0, float(row[var])) / n1 + max(0.0, float(baseline[var])) / n0)
    return diff, (diff - Z95 * se, diff + Z95 * se)


def _finished(row: dict[str, Any]) -> int:
    return int(row["succeeded"]) + int(row["failed"])
