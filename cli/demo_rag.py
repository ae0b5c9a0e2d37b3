"""The demo's second scenario, the seed's RAG pipeline: a corpus, a retrieve -> answer
pipeline over it, optimized, deployed, executed, and its trace from the read API.

DSPy's own RAG tutorial shape: search with the question, then a ChainOfThought answers
from the passages. The retrieval step searches with the question itself (not an
LM-written query) so the offline profile, whose strings are placeholders, still finds
the documents a real model would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from dspyops.cli import demo_data
from dspyops.cli.demo_steps import (
    COMMAND_TIMEOUT_S,
    OFFLINE_NOTE,
    announce_step,
    caught_up,
    demo_client,
    optimize_with_progress,
    report_done,
)
from dspyops.cli.read_api import ReadApi
from dspyops.cli.trace_tree import span_tree
from dspyops.client import DspyopsClient
from dspyops.events.commands import (
    DeployProgram,
    Document,
    ExecuteProgram,
    OptimizeProgram,
    RegisterCorpus,
    RegisterDataset,
    RegisterProgram,
)
from dspyops.events.results import (
    CorpusRegistered,
    DatasetRegistered,
    ExecutionSucceeded,
    OptimizationCompleted,
    ProgramDeployed,
    ProgramRegistered,
)
from dspyops.events.steps import Step
from dspyops.settings import Settings

# Numbered after the first scenario's seven steps and the canary's two.
FIRST_STEP = 10
SIGNATURE = "question: str -> answer: str, sources: list[str], confidence: float[0, 1]"
STEPS = [
    Step(name="retrieve", kind="Retrieve", corpus="CORPUS", k=2, bindings={"query": "question"}),
    Step(
        name="answer",
        kind="ChainOfThought",
        signature="question: str, context: list[str] -> answer: str, confidence: float[0, 1]",
        instructions="Answer from the context only, in as few words as possible.",
        bindings={"context": "retrieve.passages"},
    ),
]
# The sources are the retrieved documents' ids, not something the LM writes.
OUTPUTS = {
    "answer": "answer.answer",
    "sources": "retrieve.document_ids",
    "confidence": "answer.confidence",
}


def documents() -> list[Document]:
    """The first scenario's contexts, each a document of its own."""
    contexts = [e["context"] for e in demo_data.EXAMPLES]
    contexts += [demo_data.FIRST_QUESTION["context"], demo_data.SECOND_QUESTION["context"]]
    return [Document(id=f"doc-{n:02d}", text=text) for n, text in enumerate(contexts, 1)]


def examples() -> list[dict[str, Any]]:
    return [
        {
            "question": e["question"],
            "answer": e["answer"],
            "sources": [f"doc-{n:02d}"],
            "confidence": 1.0,
        }
        for n, e in enumerate(demo_data.EXAMPLES, 1)
    ]


@dataclass
class RagRun:
    corpus_id: str
    program_id: str
    dataset_id: str
    optimized: OptimizationCompleted | None = None
    executed: ExecutionSucceeded | None = None


class RagDemo:
    def __init__(self, settings: Settings, console: Console, *, lm: str = "default") -> None:
        self.settings = settings
        self.console = console
        self.lm = lm
        suffix = uuid.uuid4().hex[:6]
        self.run = RagRun(
            corpus_id=f"facts-{suffix}", program_id=f"rag-{suffix}", dataset_id=f"rag-{suffix}"
        )

    async def commands(self) -> RagRun:
        async with demo_client(self.settings) as client:
            await self._corpus(client)
            await self._program(client)
            await self._optimize(client)
            await self._execute(client)
        return self.run

    async def _corpus(self, client: DspyopsClient) -> None:
        announce_step(self.console, FIRST_STEP, "Register a corpus to retrieve from")
        reply = await client.send(
            RegisterCorpus(corpus_id=self.run.corpus_id, name="Facts", documents=documents()),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        corpus = reply.expect(CorpusRegistered)
        report_done(
            self.console,
            reply,
            f"{corpus.corpus_id}: version {corpus.version}, {corpus.size} documents",
        )

    async def _program(self, client: DspyopsClient) -> None:
        run = self.run
        announce_step(self.console, FIRST_STEP + 1, "Register the RAG pipeline")
        steps = [s.model_copy(update={"corpus": run.corpus_id}) if s.corpus else s for s in STEPS]
        self.console.print(f"signature: [bold]{escape(SIGNATURE)}[/]", highlight=False)
        for step in steps:
            shape = step.signature or f"search {step.corpus}, k={step.k}"
            self.console.print(f"  step {step.name} ({step.kind}): {escape(shape)}")
        reply = await client.send(
            RegisterProgram(
                program_id=run.program_id,
                name="Answer from the facts",
                signature=SIGNATURE,
                steps=steps,
                outputs=OUTPUTS,
                lm=self.lm,
            ),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        program = reply.expect(ProgramRegistered)
        report_done(self.console, reply, f"{program.program_id}: version {program.latest_version}")
        reply = await client.send(
            RegisterDataset(dataset_id=run.dataset_id, name="RAG golden set", examples=examples()),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        dataset = reply.expect(DatasetRegistered)
        report_done(self.console, reply, f"{dataset.dataset_id}: {dataset.size} examples")

    async def _optimize(self, client: DspyopsClient) -> None:
        run = self.run
        announce_step(self.console, FIRST_STEP + 2, "Optimize every predictor, then deploy")
        reply = await optimize_with_progress(
            client,
            self.console,
            OptimizeProgram(
                program_id=run.program_id,
                dataset_id=run.dataset_id,
                optimizer="BootstrapFewShot",
                metric="exact_match:answer",
                config={"max_bootstrapped_demos": 2, "max_labeled_demos": 2},
            ),
        )
        run.optimized = reply.expect(OptimizationCompleted)
        report_done(
            self.console,
            reply,
            f"version {run.optimized.version}: {run.optimized.metric} on the dev split "
            f"{run.optimized.baseline_score:.2f} -> {run.optimized.optimized_score:.2f}",
        )
        reply = await client.send(
            DeployProgram(program_id=run.program_id, version=run.optimized.version),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        deployed = reply.expect(ProgramDeployed)
        report_done(self.console, reply, f"serves version {deployed.version}")

    async def _execute(self, client: DspyopsClient) -> None:
        announce_step(self.console, FIRST_STEP + 3, "Execute the pipeline")
        question = {"question": demo_data.FIRST_QUESTION["question"]}
        self.console.print(f"question: {escape(question['question'])}", highlight=False)
        reply = await client.send(
            ExecuteProgram(program_id=self.run.program_id, inputs=question),
            timeout_s=COMMAND_TIMEOUT_S,
        )
        done = reply.expect(ExecutionSucceeded)
        self.run.executed = done
        report_done(
            self.console,
            reply,
            f"version {done.version} answered in {done.latency_ms:.0f} ms "
            f"({done.usage.total_tokens} tokens)",
        )
        for field, value in done.outputs.items():
            self.console.print(f"  {field}: {escape(repr(value))}", highlight=False)
        for summary in done.steps:
            latency = "-" if summary.latency_ms is None else f"{summary.latency_ms:.0f} ms"
            self.console.print(
                f"  step {summary.step} ({summary.type}): {latency}, {summary.total_tokens} tokens",
                highlight=False,
            )
        if done.offline:
            self.console.print(f"  {OFFLINE_NOTE}")


class RagTrace:
    """The last step: the execution's trace, as the read API serves it, drawn as a tree."""

    def __init__(self, api: ReadApi, console: Console) -> None:
        self.api = api
        self.console = console

    def show(self, run: RagRun) -> dict[str, Any]:
        assert run.executed is not None
        execution_id = run.executed.execution_id
        announce_step(self.console, FIRST_STEP + 4, "Its trace, from GET /executions/{id}")
        detail = self._caught_up(execution_id)
        if detail.get("trace") is None:
            self.console.print("(the execution recorded no trace)")
        else:
            self.console.print(span_tree(detail["trace"]))
        return detail

    def _caught_up(self, execution_id: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            detail = dict(self.api.get(f"/executions/{execution_id}"))
            # The request may be applied before its completion: wait for that.
            return detail if detail.get("status") != "requested" else None

        return caught_up(ended, f"execution {execution_id}")
