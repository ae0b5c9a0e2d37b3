"""The demo's feedback loop: production executions corrected by a reviewer become a
dataset, a judge program scores the optimization and the gate of the deploy.

A program of its own (the seed's QA signature), so the loop does not meet the first
program's canary split. The promoted executions are found the way `dspyops promote
--program --max-score` finds them: by the read API's feedback filter, once the projector
has applied the feedback. With the offline LM every answer and every judge score is
canned (0.0): the commands, events and read models are real, the scores are not.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rich.console import Console

from dspyops.cli import demo_data
from dspyops.cli.demo_steps import (
    COMMAND_TIMEOUT_S,
    OFFLINE_NOTE,
    announce_step,
    caught_up,
    demo_client,
    optimize_with_progress,
    report_done,
    score,
)
from dspyops.cli.read_api import ReadApi
from dspyops.client import DspyopsClient
from dspyops.events.commands import (
    DeployProgram,
    ExecuteProgram,
    OptimizeProgram,
    PromoteExecutions,
    PromotionGate,
    RecordFeedback,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.events.results import (
    DatasetRegistered,
    ExecutionsPromoted,
    ExecutionSucceeded,
    FeedbackRecorded,
    OptimizationCompleted,
    ProgramDeployed,
    ProgramRegistered,
)
from dspyops.settings import Settings

# After the RAG scenario's five steps.
FIRST_STEP = 15
JUDGE_SIGNATURE = (
    "question: str, answer: str, reference_answer: str -> score: float[0, 1], rationale: str"
)
# Feedback at or below this is a correction to learn from; above it, a good answer.
CORRECTION_MAX_SCORE = 0.5


@dataclass
class LoopRun:
    program_id: str
    judge_id: str
    dataset_id: str
    # execution id -> the golden example it ran, for the corrections.
    executions: dict[str, dict[str, object]] = field(default_factory=dict)
    # The offline LM answered: every answer and judge score is canned.
    offline: bool = False
    corrected: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)
    optimized: OptimizationCompleted | None = None
    deployed: ProgramDeployed | None = None


class LoopDemo:
    def __init__(
        self, settings: Settings, console: Console, api: ReadApi, *, lm: str = "default"
    ) -> None:
        self.settings = settings
        self.console = console
        self.api = api
        self.lm = lm
        suffix = uuid.uuid4().hex[:6]
        self.run = LoopRun(
            program_id=f"qa-loop-{suffix}",
            judge_id=f"judge-{suffix}",
            dataset_id=f"qa-from-production-{suffix}",
        )

    async def commands(self) -> LoopRun:
        async with demo_client(self.settings) as client:
            announce_step(self.console, FIRST_STEP, "Production feedback becomes a dataset")
            await self._register(client)
            await self._production(client)
            await self._feedback(client)
            await self._promote(client)
            announce_step(
                self.console, FIRST_STEP + 1, "Optimize with a judge, deploy through its gate"
            )
            await self._optimize(client)
            await self._deploy(client)
        return self.run

    async def _register(self, client: DspyopsClient) -> None:
        run = self.run
        for command in (
            RegisterProgram(
                program_id=run.program_id,
                name="QA, learning from production",
                signature=demo_data.SIGNATURE,
                instructions=demo_data.INSTRUCTIONS,
                lm=self.lm,
            ),
            RegisterProgram(
                program_id=run.judge_id,
                name="Judge: is the answer the reference?",
                signature=JUDGE_SIGNATURE,
                lm=self.lm,
            ),
        ):
            reply = await client.send(command, timeout_s=COMMAND_TIMEOUT_S)
            done = reply.expect(ProgramRegistered)
            report_done(self.console, reply, f"{done.program_id}: version {done.latest_version}")
        reply = await client.send(
            DeployProgram(program_id=run.program_id, version=1), timeout_s=COMMAND_TIMEOUT_S
        )
        report_done(self.console, reply, f"serves version {reply.expect(ProgramDeployed).version}")
        reply = await client.send(
            RegisterDataset(dataset_id=run.dataset_id, name="QA from production", dev_fraction=0.3),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        report_done(self.console, reply, f"{reply.expect(DatasetRegistered).dataset_id}: empty")

    async def _production(self, client: DspyopsClient) -> None:
        for example in demo_data.EXAMPLES:
            inputs = {"question": example["question"], "context": example["context"]}
            command = ExecuteProgram(program_id=self.run.program_id, inputs=inputs)
            reply = await client.send(command, timeout_s=COMMAND_TIMEOUT_S)
            done = reply.expect(ExecutionSucceeded)
            self.run.executions[done.execution_id] = example
            self.run.offline = self.run.offline or done.offline
        self.console.print(
            f"{len(self.run.executions)} production executions of {self.run.program_id}",
            highlight=False,
        )
        if self.run.offline:
            self.console.print(f"  {OFFLINE_NOTE}: the judge's scores below are canned too")

    async def _feedback(self, client: DspyopsClient) -> None:
        """A reviewer corrects all but the last (score 0 and the right answer) and rates
        the last one good (score 1, nothing to learn)."""
        *wrong, good = self.run.executions.items()
        for execution_id, example in wrong:
            corrected = {"answer": example["answer"], "confidence": example["confidence"]}
            feedback = RecordFeedback(
                execution_id=execution_id, score=0.0, corrected_outputs=corrected
            )
            (await client.send(feedback, timeout_s=COMMAND_TIMEOUT_S)).expect(FeedbackRecorded)
            self.run.corrected.append(execution_id)
        rated = RecordFeedback(execution_id=good[0], score=1.0, label="good")
        reply = await client.send(rated, timeout_s=COMMAND_TIMEOUT_S)
        reply.expect(FeedbackRecorded)
        report_done(
            self.console,
            reply,
            f"feedback: {len(wrong)} corrected (score 0 and the right answer), 1 rated good",
        )

    async def _promote(self, client: DspyopsClient) -> None:
        run = self.run
        run.promoted = self._corrections_found()
        self.console.print(
            f"GET /programs/{run.program_id}/executions?max_score={CORRECTION_MAX_SCORE}: "
            f"{len(run.promoted)} executions (what `dspyops promote {run.dataset_id} --program "
            f"{run.program_id} --max-score {CORRECTION_MAX_SCORE}` sends)",
            highlight=False,
        )
        reply = await client.send(
            PromoteExecutions(dataset_id=run.dataset_id, execution_ids=run.promoted),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        done = reply.expect(ExecutionsPromoted)
        report_done(
            self.console,
            reply,
            f"{done.appended} examples appended to {done.dataset_id} ({done.train_size} train, "
            f"{done.dev_size} dev), each with its corrected outputs and its source execution",
        )

    def _corrections_found(self) -> list[str]:
        """The read API's feedback filter, once the projector has applied every correction."""
        wanted = set(self.run.corrected)

        def found() -> list[str] | None:
            rows = self.api.items(
                f"/programs/{self.run.program_id}/executions",
                limit=100,
                status="succeeded",
                max_score=CORRECTION_MAX_SCORE,
            )
            ids = [row["execution_id"] for row in rows]
            return ids if set(ids) == wanted else None

        return caught_up(found, f"the {len(wanted)} corrected executions")

    async def _optimize(self, client: DspyopsClient) -> None:
        run = self.run
        metric = f"judge:{run.judge_id}"
        reply = await optimize_with_progress(
            client,
            self.console,
            OptimizeProgram(
                program_id=run.program_id,
                dataset_id=run.dataset_id,
                optimizer="BootstrapFewShot",
                metric=metric,
                config={"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
            ),
        )
        run.optimized = reply.expect(OptimizationCompleted)
        report_done(
            self.console,
            reply,
            f"version {run.optimized.version} from dataset version "
            f"{run.optimized.dataset_version}: {metric} on the dev split "
            f"{run.optimized.baseline_score:.2f} -> {run.optimized.optimized_score:.2f}",
        )

    async def _deploy(self, client: DspyopsClient) -> None:
        run = self.run
        assert run.optimized is not None
        gate = PromotionGate(dataset_id=run.dataset_id, metric=f"judge:{run.judge_id}", split="all")
        reply = await client.send(
            DeployProgram(program_id=run.program_id, version=run.optimized.version, gate=gate),
            timeout_s=COMMAND_TIMEOUT_S * 2,
        )
        run.deployed = reply.expect(ProgramDeployed)
        report = run.deployed.gate
        assert report is not None
        report_done(
            self.console,
            reply,
            f"version {run.deployed.version} serves: the gate scored it "
            f"{score(report.candidate_score)} against version {report.current_version}'s "
            f"{score(report.current_score)} with the judge, on all {run.dataset_id}",
        )
