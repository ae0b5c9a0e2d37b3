"""Versions compared with a baseline: differences and their 95 % intervals."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dspyops.api.arms import Z95, difference


def stats(version: int, succeeded: int, failed: int, **more: Any) -> dict[str, Any]:
    row = {
        "k": version,
        "succeeded": succeeded,
        "failed": failed,
        "latency_n": succeeded + failed,
        "latency_mean_ms": None,
        "latency_var": None,
        "feedback_scored": 0,
        "feedback_score_mean": None,
        "feedback_score_var": None,
    }
    return {**row, **more}


def test_success_rate_difference_and_wald_interval() -> None:
    got = difference(stats(3, 80, 20), stats(2, 900, 100))
    assert (got["version"], got["baseline_version"]) == (3, 2)
    assert got["success_rate_diff"] == pytest.approx(-0.1)
    se = math.sqrt(0.8 * 0.2 / 100 + 0.9 * 0.1 / 1000)
    low, high = got["success_rate_diff_ci95"]
    assert (low, high) == pytest.approx((-0.1 - Z95 * se, -0.1 + Z95 * se))
    # An interval that excludes 0: the candidate is worse, and we can tell.
    assert high < 0


def test_means_use_welch_standard_errors() -> None:
    row = stats(3, 50, 0, latency_mean_ms=120.0, latency_var=400.0)
    base = stats(2, 200, 0, latency_mean_ms=100.0, latency_var=100.0)
    row.update(feedback_scored=10, feedback_score_mean=0.9, feedback_score_var=0.01)
    base.update(feedback_scored=40, feedback_score_mean=0.7, feedback_score_var=0.04)
    got = difference(row, base)
    assert got["latency_mean_diff_ms"] == pytest.approx(20.0)
    se = math.sqrt(400 / 50 + 100 / 200)
    assert got["latency_mean_diff_ms_ci95"] == pytest.approx((20 - Z95 * se, 20 + Z95 * se))
    assert got["feedback_score_diff"] == pytest.approx(0.2)
    se = math.sqrt(0.01 / 10 + 0.04 / 40)
    assert got["feedback_score_diff_ci95"] == pytest.approx((0.2 - Z95 * se, 0.2 + Z95 * se))


def test_too_little_to_measure_gives_no_interval() -> None:
    got = difference(stats(3, 1, 0), stats(2, 0, 0))
    assert (got["success_rate_diff"], got["success_rate_diff_ci95"]) == (None, None)
    got = difference(stats(3, 1, 0, latency_mean_ms=5.0), stats(2, 9, 1, latency_mean_ms=4.0))
    assert got["success_rate_diff"] == pytest.approx(0.1)
    assert got["success_rate_diff_ci95"] is None
    assert (got["latency_mean_diff_ms"], got["latency_mean_diff_ms_ci95"]) == (1.0, None)
    assert (got["feedback_score_diff"], got["feedback_score_diff_ci95"]) == (None, None)


def test_a_variance_rounded_below_zero_counts_as_zero() -> None:
    # Equal scores: the variance from sums may come out a hair below 0 in floating point.
    row = stats(3, 5, 0, feedback_scored=5, feedback_score_mean=0.7, feedback_score_var=-1e-17)
    base = stats(2, 5, 0, feedback_scored=5, feedback_score_mean=0.7, feedback_score_var=-2e-17)
    got = difference(row, base)
    assert got["feedback_score_diff"] == 0.0
    assert got["feedback_score_diff_ci95"] == (0.0, 0.0)
