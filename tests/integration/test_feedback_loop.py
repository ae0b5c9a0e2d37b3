"""The loop from production to a better program, in one test, through Kafka (issue 13).

A real `dspyops worker` process whose two LM profiles are the loopback OpenAI-compatible
server (the real LiteLLM/HTTP path): `default` for the program, which answers right only
when its prompt shows a worked example, and `judge` (priced) for a judge program that
scores an answer against the reference. Then, by the client:

1. the program serves version 1 and runs production executions: all wrong;
2. a reviewer corrects eight of them by feedback (score 0, corrected outputs) and rates
   two others 1;
3. the feedback filter of the read API (projector and API in this process: what
   `dspyops promote --program --max-score` asks) finds the eight; they are promoted to
   a dataset, with their corrections;
4. the program is optimized on that dataset with the judge as the metric;
5. the new version is deployed through a promotion gate scored by the same judge;
6. production now answers right, and the read API shows which dataset version made the
   version that serves and the judge's calls as the judge program's executions.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

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
from tests.support.openai_server import OpenAIServer, chat_reply, worker_lm_env
from tests.support.optimization import ANSWERS
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import (
    drop_schema,
    read_api,
    settings_for,
    stack_env,
    started_client,
)

QA = "question: str -> answer: str"
JUDGE = "question: str, answer: str, reference: str -> score: float[0, 1], rationale: str"
CORRECTED = list(ANSWERS)[:8]
RATED_FINE = list(ANSWERS)[8:10]
# Every value here is one line; the prompt's last section is followed by instructions.
_SECTION = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)\n")


def _user_texts(messages: list[dict[str, Any]]) -> list[str]:
    # The system message describes the format with the same markers: skip it.
    return [str(m.get("content", "")) for m in messages if m.get("role") != "system"]


def reply(messages: list[dict[str, Any]]) -> str:
    """The judge when the prompt has a reference; otherwise the program, right only with a
    worked example (a demo) in its prompt."""
    texts = _user_texts(messages)
    last = dict(_SECTION.findall(texts[-1]))
    if "reference" in last:
        right = last.get("answer", "").strip() == last["reference"].strip()
        return chat_reply(score=1.0 if right else 0.0, rationale="same" if right else "differs")
    shown = sum(t.count("[[ ## question ## ]]") for t in texts)
    question = last.get("question", "").strip()
    if shown > 1 and question in ANSWERS:
        return chat_reply(answer=ANSWERS[question])
    return chat_reply(answer="I do not know")


@pytest.fixture
def lm_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(reply, usage=(40, 8)) as server:
        yield server


@pytest.fixture
def loop_env(
    bootstrap_servers: str, database_url: str, unique: str, lm_server: OpenAIServer
) -> Iterator[dict[str, str]]:
    priced = {"input_cost_per_million": 1.0, "output_cost_per_million": 2.0}
    env = {
        **stack_env(bootstrap_servers, database_url, unique),
        **worker_lm_env(lm_server.base_url, judge=priced),
    }
    yield env
    drop_schema(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])


@pytest.fixture
async def reviewer(loop_env: dict[str, str], tmp_path: Path) -> AsyncIterator[DspyopsClient]:
    with WorkerProcess(loop_env, tmp_path / "worker.log"):
        async with started_client(loop_env, "reviewer@example.com") as client:
            yield client


class ReadSide:
    """The read API on a read schema of the test's own, the projector caught up first."""

    def __init__(self, settings: Settings, read_schema: str) -> None:
        self.settings, self.read_schema = settings, read_schema

    def get(self, path: str, **params: Any) -> Any:
        with read_api(self.settings, self.read_schema) as api:
            answer = api.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def test_production_feedback_becomes_a_dataset_a_judged_optimization_and_a_gated_deploy(
    reviewer: DspyopsClient, loop_env: dict[str, str], unique: str, lm_server: OpenAIServer
) -> None:
    qa, grader, dataset = f"qa-{unique}", f"grader-{unique}", f"prod-{unique}"
    read = ReadSide(settings_for(loop_env), f"read_{unique}")

    async def send(command: Any, expected: type[Any], timeout_s: float = 120) -> Any:
        return (await reviewer.send(command, timeout_s=timeout_s)).expect(expected)

    await send(RegisterProgram(program_id=qa, name="qa", signature=QA), ProgramRegistered)
    judge = RegisterProgram(program_id=grader, name="grader", signature=JUDGE, lm="judge")
    await send(judge, ProgramRegistered)
    await send(RegisterDataset(dataset_id=dataset, name="from production"), DatasetRegistered)
    await send(DeployProgram(program_id=qa, version=1), ProgramDeployed)

    # 1-2. Production runs version 1, wrong every time; a reviewer corrects or rates it.
    ran: dict[str, str] = {}
    for question in CORRECTED + RATED_FINE:
        done = await send(
            ExecuteProgram(program_id=qa, inputs={"question": question}), ExecutionSucceeded
        )
        assert done.outputs == {"answer": "I do not know"}, done
        ran[question] = done.execution_id
    for question in CORRECTED:
        fix = RecordFeedback(
            execution_id=ran[question], score=0.0, corrected_outputs={"answer": ANSWERS[question]}
        )
        await send(fix, FeedbackRecorded)
    for question in RATED_FINE:
        await send(RecordFeedback(execution_id=ran[question], score=1.0), FeedbackRecorded)

    # 3. The read API's feedback filter finds the corrected ones; they become examples.
    found = read.get(f"/programs/{qa}/executions", status="succeeded", max_score=0.5, limit=100)
    ids = [row["execution_id"] for row in found["items"]]
    assert sorted(ids) == sorted(ran[q] for q in CORRECTED)
    promoted = await send(
        PromoteExecutions(dataset_id=dataset, execution_ids=ids), ExecutionsPromoted
    )
    assert (promoted.appended, promoted.skipped, promoted.size) == (8, 0, 8)

    # 4. Optimized with the judge as the metric: demos from the corrections.
    optimize = OptimizeProgram(program_id=qa, dataset_id=dataset, metric=f"judge:{grader}")
    optimized = await send(optimize, OptimizationCompleted, timeout_s=240)
    assert optimized.version == 2
    assert (optimized.baseline_score, optimized.optimized_score) == (0.0, 1.0), optimized

    # 5. Deployed through a gate the judge scores: version 2 against version 1.
    gate = PromotionGate(dataset_id=dataset, metric=f"judge:{grader}", split="all")
    deployed = await send(DeployProgram(program_id=qa, version=2, gate=gate), ProgramDeployed, 240)
    assert deployed.gate is not None
    assert (deployed.gate.candidate_score, deployed.gate.current_score) == (1.0, 0.0)

    # 6. Production answers right; the read side tells how the serving version was made.
    question = CORRECTED[0]
    now = await send(
        ExecuteProgram(program_id=qa, inputs={"question": question}), ExecutionSucceeded
    )
    assert (now.version, now.outputs) == (2, {"answer": ANSWERS[question]})
    try:
        program = read.get(f"/programs/{qa}")
        versions = {v["number"]: v for v in read.get(f"/programs/{qa}/versions")}
        judged = read.get(f"/programs/{grader}/metrics")["overall"]
        examples = read.get(f"/datasets/{dataset}/examples", limit=100)["items"]
    finally:
        drop_schema(read.settings.effective_database_url, read.read_schema)
    assert (program["deployed_version"], program["aliases"]["production"]) == (2, 2), program
    assert versions[2]["dataset_id"] == dataset
    assert versions[2]["dataset_version"] == 2  # registered empty (1), then the promotion
    assert {e["source_execution_id"] for e in examples} == {ran[q] for q in CORRECTED}
    # Every judge call (the optimization's and both gate runs') is a judge execution.
    assert judged["count"] >= 3 * len(CORRECTED), judged
    assert judged["cost_usd"] == pytest.approx(judged["count"] * (40 * 1.0 + 8 * 2.0) / 1e6)
    print(
        f"feedback loop: {len(ran)} production executions, {len(CORRECTED)} corrected and "
        f"promoted, version 2 scored {optimized.optimized_score} (baseline "
        f"{optimized.baseline_score}), gate {deployed.gate.candidate_score} vs "
        f"{deployed.gate.current_score}; {judged['count']} judge executions, "
        f"{len(lm_server.requests)} LM calls"
    )
