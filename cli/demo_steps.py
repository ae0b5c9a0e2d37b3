"""The demo's walk through the seed's scenarios: real commands on Kafka, then the read API.

This module is long because it is the demo's script, one step after another, meant to
be read top to bottom next to what the demo prints.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dspyops.cli import demo_data
from dspyops.cli.read_api import ReadApi, ReadApiError
from dspyops.client import DspyopsClient, Reply
from dspyops.events.commands import (
    DeployProgram,
    ExecuteProgram,
    OptimizeProgram,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.events.results import (
    DatasetRegistered,
    ExecutionSucceeded,
    OptimizationCompleted,
    ProgramDeployed,
    ProgramRegistered,
)
from dspyops.settings import Settings

T = TypeVar("T")

# Generous: with a real LM, bootstrapping makes a few dozen calls.
OPTIMIZE_TIMEOUT_S = 900.0
COMMAND_TIMEOUT_S = 120.0
READ_SIDE_TIMEOUT_S = 60.0
OFFLINE_NOTE = "[yellow]offline profile answered: canned output, not a model's answer[/]"


@dataclass
class DemoRun:
    program_id: str
    dataset_id: str
    first: ExecutionSucceeded | None = None
    optimized: OptimizationCompleted | None = None
    second: ExecutionSucceeded | None = None


class Demo:
    def __init__(self, settings: Settings, console: Console, *, lm: str = "default") -> None:
        self.settings = settings
        self.console = console
        self.lm = lm
        suffix = uuid.uuid4().hex[:6]
        self.run = DemoRun(program_id=f"qa-{suffix}", dataset_id=f"qa-golden-{suffix}")

    async def commands(self) -> DemoRun:
        async with demo_client(self.settings) as client:
            await self._register(client)
            self.run.first = await self._execute(client, 3, demo_data.FIRST_QUESTION)
            await self._optimize(client)
            assert self.run.optimized is not None
            await self._deploy(client, self.run.optimized.version)
            self.run.second = await self._execute(client, 6, demo_data.SECOND_QUESTION)
        return self.run

    def _step(self, number: int, title: str) -> None:
        announce_step(self.console, number, title)

    def _done(self, reply: Reply, text: str) -> None:
        report_done(self.console, reply, text)

    async def _register(self, client: DspyopsClient) -> None:
        run = self.run
        self._step(1, "Register the QA program")
        self.console.print(f"signature: [bold]{escape(demo_data.SIGNATURE)}[/]", highlight=False)
        reply = await client.send(
            RegisterProgram(
                program_id=run.program_id,
                name="Question answering",
                signature=demo_data.SIGNATURE,
                instructions=demo_data.INSTRUCTIONS,
                field_descriptions=demo_data.FIELD_DESCRIPTIONS,
                lm=self.lm,
            ),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        program = reply.expect(ProgramRegistered)
        self._done(
            reply,
            f"{program.program_id}: version {program.latest_version}, status {program.status}, "
            f"LM profile {program.lm!r}",
        )
        self._step(2, "Register a small dataset")
        reply = await client.send(
            RegisterDataset(
                dataset_id=run.dataset_id,
                name="QA golden set",
                examples=demo_data.EXAMPLES,
                dev_fraction=0.3,
            ),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        dataset = reply.expect(DatasetRegistered)
        self._done(
            reply,
            f"{dataset.dataset_id}: {dataset.size} examples "
            f"({dataset.train_size} train, {dataset.dev_size} dev)",
        )

    async def _execute(
        self, client: DspyopsClient, number: int, inputs: dict[str, Any]
    ) -> ExecutionSucceeded:
        self._step(number, "Execute the program")
        self.console.print(f"question: {escape(inputs['question'])}", highlight=False)
        reply = await client.send(
            ExecuteProgram(program_id=self.run.program_id, inputs=inputs),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        done = reply.expect(ExecutionSucceeded)
        self._done(
            reply,
            f"version {done.version} answered in {done.latency_ms:.0f} ms "
            f"(model {done.model!r}, {done.usage.total_tokens} tokens)",
        )
        for field, value in done.outputs.items():
            self.console.print(f"  {field}: {escape(repr(value))}", highlight=False)
        if done.offline:
            self.console.print(f"  {OFFLINE_NOTE}")
        return done

    async def _optimize(self, client: DspyopsClient) -> None:
        self._step(4, "Optimize with BootstrapFewShot")
        reply = await optimize_with_progress(
            client,
            self.console,
            OptimizeProgram(
                program_id=self.run.program_id,
                dataset_id=self.run.dataset_id,
                optimizer="BootstrapFewShot",
                metric="exact_match:answer",
                config={"max_bootstrapped_demos": 2, "max_labeled_demos": 4},
            ),
        )
        done = reply.expect(OptimizationCompleted)
        self.run.optimized = done
        self._done(
            reply,
            f"version {done.version}: {done.metric} on the dev split "
            f"{done.baseline_score:.2f} -> {done.optimized_score:.2f} (0-1 scale)",
        )

    async def _deploy(self, client: DspyopsClient, version: int) -> None:
        self._step(5, f"Deploy version {version}")
        reply = await client.send(
            DeployProgram(program_id=self.run.program_id, version=version),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        deployed = reply.expect(ProgramDeployed)
        self._done(
            reply, f"{deployed.program_id} serves version {deployed.version} ({deployed.status})"
        )


def demo_client(settings: Settings) -> DspyopsClient:
    return DspyopsClient(
        settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        actor="demo@dspyops",
        source="urn:dspyops:demo",
        security=settings.kafka_security,
    )


def caught_up(read: Callable[[], T | None], what: str) -> T:
    """`read()` again until it gives something: the projector runs apart from the worker,
    so the read API shows a command's effect a little after its result (a 404 meanwhile)."""
    deadline = time.monotonic() + READ_SIDE_TIMEOUT_S
    while True:
        try:
            found = read()
            if found is not None:
                return found
        except ReadApiError:
            pass
        if time.monotonic() > deadline:
            raise ReadApiError(
                f"the read API did not show {what} within {READ_SIDE_TIMEOUT_S:g}s",
                "is `dspyops projector` running? `dspyops projections status` shows its lag",
            )
        time.sleep(0.3)


def announce_step(console: Console, number: int, title: str) -> None:
    console.rule(f"[bold]{number}. {title}", align="left")


def report_done(console: Console, reply: Reply, text: str) -> None:
    console.print(f"[green]✓ {reply.type}[/] {text}", highlight=False)


async def optimize_with_progress(
    client: DspyopsClient, console: Console, command: OptimizeProgram
) -> Reply:
    """Send the optimization; its progress results move a bar until the terminal one."""
    progress = Progress(
        TextColumn("[bold]optimizing[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )

    def on_progress(reply: Reply) -> None:
        data = reply.data
        best = data.get("best_score")
        note = data.get("message", "")
        if best is not None:
            note = f"{note} (best {best:.2f})"
        progress.update(task, total=data.get("total"), completed=data.get("step"), note=note)

    with progress:
        task = progress.add_task("optimize", total=3, note="queued")
        reply = await client.send(command, timeout_s=OPTIMIZE_TIMEOUT_S, on_progress=on_progress)
        progress.update(task, completed=progress.tasks[task].total or 0, note="done")
    return reply


class ReadSide:
    """Step 7: what the read API says about the demo's program, once it has caught up."""

    def __init__(self, api: ReadApi, console: Console) -> None:
        self.api = api
        self.console = console

    def show(self, run: DemoRun) -> dict[str, Any]:
        self.console.rule(f"[bold]7. From the read API ({self.api.base_url})", align="left")
        assert run.optimized is not None
        program = self._caught_up(run.program_id, run.optimized.version)
        versions = self.api.get(f"/programs/{run.program_id}/versions")
        metrics = self.api.get(f"/programs/{run.program_id}/metrics")
        audit = self.api.items(f"/programs/{run.program_id}/audit", limit=50)
        self.console.print(
            f"program {program['program_id']}: status {program['status']}, "
            f"deployed version {program['deployed_version']} of {program['latest_version']}",
            highlight=False,
        )
        self._versions(versions)
        self._metrics(metrics)
        self._audit(audit)
        return {"program": program, "versions": versions, "metrics": metrics, "audit": audit}

    def _caught_up(self, program_id: str, version: int) -> dict[str, Any]:
        """The projector runs apart from the worker: wait until it applied the demo's events."""

        def deployed() -> dict[str, Any] | None:
            program = self.api.get(f"/programs/{program_id}")
            done = self.api.get(
                f"/programs/{program_id}/executions", status="succeeded", version=version
            )
            return (
                dict(program) if program["deployed_version"] == version and done["items"] else None
            )

        return caught_up(deployed, f"version {version} of {program_id} deployed")

    def _versions(self, versions: list[dict[str, Any]]) -> None:
        rows = [
            [
                str(v["number"]),
                v["source"],
                v["optimizer"] or "-",
                score(v["baseline_score"]),
                score(v["optimized_score"]),
                "yes" if v["deployed"] else "",
            ]
            for v in versions
        ]
        headers = ["version", "source", "optimizer", "baseline", "score", "deployed"]
        self.console.print(table("versions and their scores", headers, rows))

    def _metrics(self, metrics: dict[str, Any]) -> None:
        rows = [
            [
                str(row["version"]),
                str(row["count"]),
                str(row["succeeded"]),
                score(row["success_rate"]),
                ms(row["latency_p50_ms"]),
                ms(row["latency_p95_ms"]),
            ]
            for row in [*metrics["by_version"], {**metrics["overall"], "version": "all"}]
        ]
        headers = ["version", "executions", "succeeded", "success rate", "p50 ms", "p95 ms"]
        self.console.print(table("execution metrics", headers, rows))

    def _audit(self, audit: list[dict[str, Any]]) -> None:
        rows = [
            [
                str(entry["occurred_at"])[11:19],
                f"{entry['aggregate_kind']} v{entry['aggregate_version']}",
                entry["event_type"],
                entry["actor"] or "-",
                _fields(sorted(entry["changes"])),
            ]
            for entry in reversed(audit)
        ]
        headers = ["time", "aggregate", "event", "actor", "changed"]
        self.console.print(table("audit trail (oldest first)", headers, rows))


def table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    """A titled table of plain text cells (escaped: they may hold [brackets])."""
    shown = Table(*headers, title=title)
    for row in rows:
        shown.add_row(*(escape(cell) for cell in row))
    return shown


def _fields(names: list[str], shown: int = 2) -> str:
    more = ", …" if len(names) > shown else ""
    return (", ".join(names[:shown]) + more) or "-"


def score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
