"""The seed's scenario 2 and its siblings, through Kafka, with an LM over HTTP.

A corpus, then three programs that search it: the RAG pipeline
`query -> retrieve -> ChainOfThought(answer, sources, confidence)`, a ReAct agent with
both built-in tools, and the example plugin module (examples/multihop_qa). Each is
registered, optimized with BootstrapFewShot on a dataset, deployed and executed by a
real worker process; the LM is the loopback OpenAI-compatible server, so every prompt is
real and inspected: the optimized version's demos appear in every predictor's prompt,
and the trace shows each step with its timing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dspyops.api.main import create_app
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from dspyops.projections.projector import Projector
from dspyops.settings import Settings
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.lm_replies import Messages, last_user_text, output_fields
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.worker_process import WorkerProcess

OUTPUTS = "answer: str, sources: list[str], confidence: float[0, 1]"
SIGNATURE = "question: str -> " + OUTPUTS
DOCUMENTS = [
    {"id": "d1", "text": "Paris is the capital and largest city of France."},
    {"id": "d2", "text": "Berlin is the capital of Germany."},
    {"id": "d3", "text": "The Seine flows through Paris."},
]
QUESTIONS = [f"Which city is the capital of France? ({n})" for n in range(6)]


def reply(messages: Messages) -> str:
    """Whatever predictor asks: its own outputs (read from the prompt's field list)."""
    fields = output_fields(messages)
    text = last_user_text(messages)
    if "next_tool_name" in fields:
        # A ReAct step: arithmetic first, then search the corpus, then finish.
        if "observation_1" in text:
            call: dict[str, Any] = {"next_tool_name": "finish", "next_tool_args": {}}
        elif "observation_0" in text:
            call = {
                "next_tool_name": "corpus_search",
                "next_tool_args": {"query": "capital France"},
            }
        else:
            call = {"next_tool_name": "arithmetic", "next_tool_args": {"expression": "6 * 7"}}
        return chat_reply(next_thought="Let me use a tool.", **call)
    values = {
        "reasoning": "The passages say so.",
        "query": "capital of France",
        "answer": "Paris",
        "sources": ["d1"],
        "confidence": 0.9,
    }
    return chat_reply(**{name: values.get(name, "x") for name in fields})


class Conversation:
    """Send a command, wait for its terminal result."""

    def __init__(self, bootstrap: str, topics: Topics, results: TopicReader) -> None:
        self.bootstrap, self.topics, self.results = bootstrap, topics, results

    async def ask(self, kind: str, data: dict[str, Any], timeout_s: float = 120) -> dict[str, Any]:
        envelope: Envelope = command(kind, data)
        await send_commands(self.bootstrap, self.topics, [envelope])
        (result,) = (await self.results.results_for([envelope.id], timeout_s=timeout_s))[
            envelope.id
        ]
        return result


PROGRAMS: dict[str, dict[str, Any]] = {
    "rag": {
        "signature": SIGNATURE,
        "steps": [
            {"name": "query", "kind": "Predict", "signature": "question: str -> query: str"},
            {
                "name": "retrieve",
                "kind": "Retrieve",
                "corpus": "CORPUS",
                "k": 2,
                "bindings": {"query": "query.query"},
            },
            {
                "name": "answer",
                "kind": "ChainOfThought",
                "signature": "question: str, context: list[str] -> " + OUTPUTS,
                "bindings": {"context": "retrieve.passages"},
            },
        ],
    },
    "agent": {
        "signature": "question: str -> answer: str",
        "steps": [
            {
                "name": "agent",
                "kind": "ReAct",
                "signature": "question: str -> answer: str",
                "tools": ["arithmetic", "corpus_search"],
                "corpus": "CORPUS",
                "max_iters": 4,
            }
        ],
    },
    "multihop": {"module": "plugin:multihop", "options": {"corpus_id": "CORPUS", "hops": 2}},
}
# The predictors each program's optimized version must show demos in, by output fields.
PREDICTORS = {
    "rag": [["query"], ["reasoning", "answer", "sources", "confidence"]],
    "agent": [["next_thought", "next_tool_name", "next_tool_args"], ["reasoning", "answer"]],
    "multihop": [["reasoning", "query"], ["reasoning", "answer"]],
}
STEPS = {"rag": ["query", "retrieve", "answer"], "agent": ["agent"], "multihop": None}


def spec(name: str, corpus: str, unique: str) -> dict[str, Any]:
    text = json.dumps(PROGRAMS[name]).replace("CORPUS", corpus)
    return {"program_id": f"{name}-{unique}", "name": name, **json.loads(text)}


async def test_pipelines_agents_and_plugins_register_optimize_deploy_and_trace(
    env: dict[str, str], database_url: str, settings: Settings, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    corpus = f"docs-{unique}"
    with OpenAIServer(reply, usage=(30, 7)) as lm:
        profiles = {
            "default": {
                "model": "openai/test-model",
                "api_base": lm.base_url,
                "num_retries": 0,
                # The test model has no list price: the profile's own (USD per million).
                "input_cost_per_million": 2.0,
                "output_cost_per_million": 8.0,
            }
        }
        worker_env = {**env, "DSPYOPS_LM_PROFILES": json.dumps(profiles), "OPENAI_API_KEY": "k"}
        with WorkerProcess(worker_env, tmp_path / "worker.log"):
            async with TopicReader(bootstrap, topics.results) as results:
                talk = Conversation(bootstrap, topics, results)
                registered = await talk.ask(
                    "RegisterCorpus", {"corpus_id": corpus, "name": "docs", "documents": DOCUMENTS}
                )
                assert registered["type"] == "dspyops.result.CorpusRegistered", registered
                executed: dict[str, dict[str, Any]] = {}
                for name in PROGRAMS:
                    executed[name] = await _lifecycle(
                        talk, lm, name, spec(name, corpus, unique), unique
                    )
    projector = Projector(
        database_url,
        event_store_schema=env["DSPYOPS_EVENT_STORE_SCHEMA"],
        read_schema=f"read_{unique}",
    )
    try:
        projector.catch_up()
    finally:
        projector.close()
    api = create_app(
        settings.model_copy(
            update={
                "event_store_schema": env["DSPYOPS_EVENT_STORE_SCHEMA"],
                "read_model_schema": f"read_{unique}",
            }
        )
    )
    with TestClient(api) as client:
        for name, result in executed.items():
            trace = client.get(f"/executions/{result['execution_id']}").json()["trace"]
            _check_trace(name, trace, corpus)


async def _lifecycle(
    talk: Conversation, lm: OpenAIServer, name: str, program: dict[str, Any], unique: str
) -> dict[str, Any]:
    registered = await talk.ask("RegisterProgram", program)
    assert registered["type"] == "dspyops.result.ProgramRegistered", registered
    program_id = program["program_id"]
    labels = (
        {"answer": "Paris"}
        if name != "rag"
        else {"answer": "Paris", "sources": ["d1"], "confidence": 0.9}
    )
    examples = [{"question": q, **labels} for q in QUESTIONS]
    dataset = await talk.ask(
        "RegisterDataset",
        {
            "dataset_id": f"ds-{name}-{unique}",
            "name": name,
            "examples": examples,
            "dev_fraction": 0.3,
        },
    )
    assert dataset["type"] == "dspyops.result.DatasetRegistered", dataset
    optimized = await talk.ask(
        "OptimizeProgram",
        {
            "program_id": program_id,
            "dataset_id": f"ds-{name}-{unique}",
            "optimizer": "BootstrapFewShot",
            "metric": "exact_match:answer",
            "config": {"max_bootstrapped_demos": 2, "max_labeled_demos": 0},
        },
        timeout_s=240,
    )
    assert optimized["type"] == "dspyops.result.OptimizationCompleted", optimized
    version = optimized["data"]["version"]
    deployed = await talk.ask("DeployProgram", {"program_id": program_id, "version": version})
    assert deployed["type"] == "dspyops.result.ProgramDeployed", deployed
    before = len(lm.requests)
    result = await talk.ask(
        "ExecuteProgram",
        {"program_id": program_id, "inputs": {"question": "What is the capital of France?"}},
    )
    assert result["type"] == "dspyops.result.ExecutionSucceeded", result
    data = result["data"]
    assert data["version"] == version
    assert data["outputs"]["answer"] == "Paris"
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0
    assert data["cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 2.0 + usage["completion_tokens"] * 8.0) / 1e6
    )
    if STEPS[name] is not None:
        assert [s["step"] for s in data["steps"]] == STEPS[name]
        assert all(s["latency_ms"] is not None for s in data["steps"])
    # Every predictor's prompt carries the optimized version's demos: DSPy writes each
    # demo as a user/assistant pair before the question.
    prompts = {tuple(output_fields(m["messages"])): m["messages"] for m in lm.requests[before:]}
    for fields in PREDICTORS[name]:
        messages = prompts[tuple(fields)]
        assert len(messages) >= 4, (name, fields, messages)
    return data


def _check_trace(name: str, trace: dict[str, Any], corpus: str) -> None:
    spans = list(_walk(trace))
    lms = [s for s in spans if s["kind"] == "lm"]
    assert lms, name
    assert all(s["model"] == "openai/test-model" and s["usage"]["total_tokens"] == 37 for s in lms)
    if name == "rag":
        steps = [s for s in trace["children"]]
        assert [s["name"] for s in steps] == ["query", "retrieve", "answer"]
        assert all(s["latency_ms"] > 0 for s in steps)
        retrieval = steps[1]
        assert (retrieval["kind"], retrieval["corpus"], retrieval["corpus_version"]) == (
            "retrieval",
            corpus,
            1,
        )
        assert retrieval["document_ids"][0] == "d1"
    if name == "agent":
        tools = [(s["name"], s["error"]) for s in spans if s["kind"] == "tool"]
        assert tools[:2] == [("arithmetic", None), ("corpus_search", None)]
        arithmetic = next(s for s in spans if s["name"] == "arithmetic")
        assert arithmetic["outputs"] == "42"
    if name == "multihop":
        predictors = {s["name"] for s in spans if s["kind"] == "predictor"}
        assert {"generate_query.predict", "answer.predict"} <= predictors


def _walk(span: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield span
    for child in span.get("children", []):
        yield from _walk(child)
