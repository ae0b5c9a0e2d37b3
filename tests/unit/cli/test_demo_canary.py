"""The demo's canary stats: the two versions side by side from the metrics the read API
serves, once they count the whole batch; differences signed, with their intervals."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import pytest
from rich.console import Console

from dspyops.cli import demo_canary
from dspyops.cli.demo_canary import CanaryRun, CanaryStats, difference
from dspyops.cli.read_api import ReadApi, ReadApiError


def version_row(version: int, count: int, mean: float) -> dict[str, Any]:
    return {
        "version": version,
        "count": count,
        "succeeded": count,
        "failed": 0,
        "success_rate": 1.0,
        "latency_p50_ms": mean - 0.4,
        "latency_mean_ms": mean,
    }


def metrics(v2: int, v3: int) -> dict[str, Any]:
    rows = [version_row(1, 1, 14.0), version_row(2, v2, 7.25), version_row(3, v3, 8.5)]
    comparison = {
        "version": 3,
        "baseline_version": 2,
        "success_rate_diff": 0.0,
        "success_rate_diff_ci95": [0.0, 0.0],
        "latency_mean_diff_ms": 1.25,
        "latency_mean_diff_ms_ci95": [-0.5, 3.0],
    }
    return {"by_version": [row for row in rows if row["count"]], "comparison": [comparison]}


class FakeApi:
    """Answers in turn: the projector catching up, then the whole batch."""

    def __init__(self, *answers: dict[str, Any] | ReadApiError) -> None:
        self.answers = list(answers)
        self.paths: list[str] = []

    def get(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, ReadApiError):
            raise answer
        return answer


def canary_run() -> CanaryRun:
    run = CanaryRun(program_id="qa-1", control=2, candidate=3, weights={2: 90, 3: 10})
    run.expected = Counter({1: 1, 2: 73, 3: 8})
    return run


def shown(api: FakeApi) -> tuple[str, dict[str, Any]]:
    console = Console(record=True, width=100)
    served = CanaryStats(cast(ReadApi, api), console).show(canary_run())
    return console.export_text(), served


def test_waits_for_the_whole_batch_then_shows_the_versions_side_by_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_canary.time, "sleep", lambda _s: None)
    api = FakeApi(ReadApiError("404", "not yet"), metrics(60, 8), metrics(73, 8))
    text, served = shown(api)
    assert api.paths == ["/programs/qa-1/metrics"] * 3
    assert served == metrics(73, 8)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "canary v3 against production v2" in lines
    assert "┃ ┃ v2 (90 %) ┃ v3 (10 %) ┃ v3 - v2 (95 % interval) ┃" in lines
    assert "│ executions │ 73 │ 8 │ │" in lines
    assert "│ success rate │ 1.00 │ 1.00 │ +0.00 [+0.00, +0.00] │" in lines
    assert "│ latency p50 ms │ 7 │ 8 │ │" in lines
    assert "│ latency mean ms │ 7.2 │ 8.5 │ +1.2 [-0.5, +3.0] │" in lines
    assert "`dspyops split qa-1 2=100` to stop" in " ".join(lines)


def test_a_batch_that_missed_the_candidate_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_canary.time, "sleep", lambda _s: None)
    nothing_on_v3 = metrics(81, 0)
    nothing_on_v3["comparison"] = []
    run_expected = Counter({1: 1, 2: 81})
    console = Console(record=True, width=100)
    run = canary_run()
    run.expected = run_expected
    served = CanaryStats(cast(ReadApi, FakeApi(nothing_on_v3)), console).show(run)
    assert served == nothing_on_v3
    assert "no execution of the batch ran v3: nothing to compare yet" in console.export_text()


def test_differences_are_signed_with_their_interval_when_known() -> None:
    assert difference(0.0312, [-0.01, 0.07]) == "+0.03 [-0.01, +0.07]"
    assert difference(-1.25, None, digits=1) == "-1.2"
    assert difference(None, None) == "-"
