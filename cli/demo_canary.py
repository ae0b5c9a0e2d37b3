"""The demo's canary: a new version of the QA program on 10 % of production, a batch of
executions with routing keys, and the two versions side by side from the read API.

The new version comes from UpdateProgram (new instructions), not a second optimization,
so the step costs the executions and little else.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from dspyops.cli import demo_data
from dspyops.cli.demo_steps import (
    COMMAND_TIMEOUT_S,
    DemoRun,
    announce_step,
    caught_up,
    demo_client,
    ms,
    report_done,
    score,
    table,
)
from dspyops.cli.read_api import ReadApi
from dspyops.client import DspyopsClient
from dspyops.events.commands import ExecuteProgram, SetTrafficSplit, SplitGuard, UpdateProgram
from dspyops.events.results import ExecutionSucceeded, ProgramTrafficSplitSet, ProgramUpdated
from dspyops.settings import Settings

# After the first scenario's seven steps; the RAG scenario follows.
FIRST_STEP = 8
CANARY_PERCENT = 10
# Enough that the 10 % arm gets a handful (about 8), few enough to take a second or two.
EXECUTIONS = 80
# A few at a time: all 80 at once would time the worker's queue, not the versions.
IN_FLIGHT = 16
GUARD = SplitGuard(max_error_rate=0.2, window=20)
NEW_INSTRUCTIONS = demo_data.INSTRUCTIONS + " Quote the context's words."


@dataclass
class CanaryRun:
    program_id: str
    control: int
    candidate: int = 0
    weights: dict[int, int] = field(default_factory=dict)
    # How many of the batch each version ran, as the results say.
    ran: Counter[int] = field(default_factory=Counter)
    # Every execution of the program by version, the demo's earlier two among them: what
    # the read side counts once it has caught up.
    expected: Counter[int] = field(default_factory=Counter)


class CanaryDemo:
    def __init__(self, settings: Settings, console: Console, first: DemoRun) -> None:
        assert first.optimized is not None
        self.settings = settings
        self.console = console
        self.run = CanaryRun(program_id=first.program_id, control=first.optimized.version)
        earlier = (first.first, first.second)
        self.run.expected.update(e.version for e in earlier if e is not None)

    async def commands(self) -> CanaryRun:
        announce_step(self.console, FIRST_STEP, f"Canary a new version at {CANARY_PERCENT} %")
        async with demo_client(self.settings) as client:
            await self._new_version(client)
            await self._split(client)
            await self._executions(client)
        return self.run

    async def _new_version(self, client: DspyopsClient) -> None:
        reply = await client.send(
            UpdateProgram(program_id=self.run.program_id, instructions=NEW_INSTRUCTIONS),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        updated = reply.expect(ProgramUpdated)
        assert updated.new_version is not None
        self.run.candidate = updated.new_version
        report_done(
            self.console,
            reply,
            f"version {updated.new_version}: new instructions; production stays on "
            f"version {updated.deployed_version}",
        )

    async def _split(self, client: DspyopsClient) -> None:
        run = self.run
        weights = {run.control: 100 - CANARY_PERCENT, run.candidate: CANARY_PERCENT}
        reply = await client.send(
            SetTrafficSplit(
                program_id=run.program_id,
                weights={str(version): percent for version, percent in weights.items()},
                guard=GUARD,
                reason=f"canary v{run.candidate}: new instructions",
            ),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        done = reply.expect(ProgramTrafficSplitSet)
        run.weights = {arm.version: arm.percent for arm in done.arms}
        arms = ", ".join(f"v{v} {p} %" for v, p in sorted(run.weights.items()))
        report_done(
            self.console,
            reply,
            f"{done.alias}: {arms}; guard: a candidate out above "
            f"{GUARD.max_error_rate * 100:.0f} % failed of its last {GUARD.window}",
        )

    async def _executions(self, client: DspyopsClient) -> None:
        """The batch, a few at a time: each execution names no version, so production's split
        routes it by its routing key (a user id here: one user keeps one version)."""
        examples = demo_data.EXAMPLES
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        async def execute(i: int) -> ExecutionSucceeded:
            inputs = {k: examples[i % len(examples)][k] for k in ("question", "context")}
            command = ExecuteProgram(
                program_id=self.run.program_id, inputs=inputs, routing_key=f"user-{i:03d}"
            )
            async with in_flight:
                reply = await client.send(command, timeout_s=COMMAND_TIMEOUT_S)
            return reply.expect(ExecutionSucceeded)

        started = time.monotonic()
        done = await asyncio.gather(*(execute(i) for i in range(EXECUTIONS)))
        elapsed = time.monotonic() - started
        self.run.ran = Counter(d.version for d in done)
        self.run.expected.update(self.run.ran)
        ran = ", ".join(f"v{v} {n}" for v, n in sorted(self.run.ran.items()))
        self.console.print(
            f"{EXECUTIONS} executions, routing keys user-000..user-{EXECUTIONS - 1:03d}, "
            f"in {elapsed:.1f} s: {ran}",
            highlight=False,
        )
        routed = next((d for d in done if d.version == self.run.candidate), done[0])
        if routed.route is not None and routed.route.reason:
            self.console.print(f"  route: {escape(routed.route.reason)}", highlight=False)


class CanaryStats:
    """The canary against production, from GET /programs/{id}/metrics once it has caught up."""

    def __init__(self, api: ReadApi, console: Console) -> None:
        self.api = api
        self.console = console

    def show(self, run: CanaryRun) -> dict[str, Any]:
        announce_step(
            self.console, FIRST_STEP + 1, "The canary's stats, from GET /programs/{id}/metrics"
        )
        metrics = self._caught_up(run)
        versions = {row["version"]: row for row in metrics["by_version"]}
        compared = next((c for c in metrics["comparison"] if c["version"] == run.candidate), None)
        if compared is None or run.candidate not in versions or run.control not in versions:
            # About once in 4,600 runs no key of the batch falls in the 10 %.
            self.console.print(
                f"no execution of the batch ran v{run.candidate}: nothing to compare yet",
                highlight=False,
            )
            return metrics
        control, candidate = versions[run.control], versions[run.candidate]
        headers = [
            "",
            f"v{run.control} ({run.weights.get(run.control, 100)} %)",
            f"v{run.candidate} ({run.weights.get(run.candidate, 0)} %)",
            f"v{run.candidate} - v{run.control} (95 % interval)",
        ]
        rows = [
            ["executions", str(control["count"]), str(candidate["count"]), ""],
            [
                "success rate",
                score(control["success_rate"]),
                score(candidate["success_rate"]),
                difference(compared["success_rate_diff"], compared["success_rate_diff_ci95"]),
            ],
            ["latency p50 ms", ms(control["latency_p50_ms"]), ms(candidate["latency_p50_ms"]), ""],
            [
                "latency mean ms",
                tenths(control["latency_mean_ms"]),
                tenths(candidate["latency_mean_ms"]),
                difference(
                    compared["latency_mean_diff_ms"],
                    compared["latency_mean_diff_ms_ci95"],
                    digits=1,
                ),
            ],
        ]
        title = f"canary v{run.candidate} against production v{run.control}"
        self.console.print(table(title, headers, rows))
        self.console.print(
            f"v{run.candidate} has {candidate['count']} executions: under about 30 a side the "
            "intervals are too narrow. Next: `dspyops send DeployProgram` to promote it (that "
            f"ends the split), or `dspyops split {run.program_id} {run.control}=100` to stop.",
            highlight=False,
        )
        return dict(metrics)

    def _caught_up(self, run: CanaryRun) -> dict[str, Any]:
        """Wait until the metrics count every execution of the batch on its version."""

        def counted() -> dict[str, Any] | None:
            metrics = dict(self.api.get(f"/programs/{run.program_id}/metrics"))
            finished = {
                row["version"]: row["succeeded"] + row["failed"] for row in metrics["by_version"]
            }
            return (
                metrics if all(finished.get(v, 0) >= n for v, n in run.expected.items()) else None
            )

        return caught_up(counted, "the canary's executions counted")


def difference(value: float | None, interval: list[float] | None, *, digits: int = 2) -> str:
    """`+0.01 [-0.03, +0.05]`: a signed difference and its 95 % interval, when known."""
    if value is None:
        return "-"
    shown = f"{value:+.{digits}f}"
    if interval is None:
        return shown
    low, high = interval
    return f"{shown} [{low:+.{digits}f}, {high:+.{digits}f}]"


def tenths(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
