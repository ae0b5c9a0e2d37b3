"""Evaluations and optimizations whose LM calls fail, through Kafka and a worker process.

An LM that fails reads, to ``dspy.Evaluate``, like a program that answers wrong: each
failed example scores 0. Here the LM is an OpenAI-compatible server on 127.0.0.1 that
fails every call (401) for one program's profile, and every third call (500) for the
other's; ``num_retries: 0`` makes each example one request, so the counts are exact.
Runs are sent one at a time and the flaky server's count restarts before each, so the
failing calls are the 3rd, 6th, ... of every run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dspyops.bootstrap import open_store
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.envelope import Envelope
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.optimization import ANSWERS, EXAMPLES, SIGNATURE
from tests.support.worker_process import WorkerProcess
from tests.support.worker_stack import stored_events

_QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(.*?)\n")
RESULT = "dspyops.result."


def _right_answer(messages: list[dict[str, Any]]) -> str:
    questions = _QUESTION.findall(str(messages[-1]["content"]))
    return chat_reply(answer=ANSWERS.get(questions[-1], "?") if questions else "?")


def _profile(server: OpenAIServer) -> dict[str, Any]:
    return {
        "model": "openai/test-model",
        "api_base": server.base_url,
        "api_key_env": "DSPYOPS_TEST_LM_KEY",
        "timeout_s": 10,
        "num_retries": 0,
    }


def _register(program_id: str, lm: str) -> Envelope:
    body = {"program_id": program_id, "name": "add", "signature": SIGNATURE, "lm": lm}
    return command("RegisterProgram", body)


def _runs(lm: str, unique: str, dataset_id: str) -> dict[str, tuple[Envelope, Envelope]]:
    """(RegisterProgram, run command) by run: a program each, so no run sees another's end."""
    optimizers = {
        "labeled": ("LabeledFewShot", {"k": 2}),
        "bootstrap": ("BootstrapFewShot", {"max_bootstrapped_demos": 2, "max_labeled_demos": 1}),
    }
    runs = {}
    for name in ("evaluate", *optimizers):
        program_id = f"{lm}-{name}-{unique}"
        target = {"program_id": program_id, "dataset_id": dataset_id, "metric": "exact_match"}
        if name == "evaluate":
            run = command("EvaluateProgram", {**target, "evaluation_id": f"eval-{program_id}"})
        else:
            optimizer, config = optimizers[name]
            run = command("OptimizeProgram", {**target, "optimizer": optimizer, "config": config})
        runs[name] = (_register(program_id, lm), run)
    return runs


async def test_runs_on_a_failing_lm_report_the_failures_and_create_no_version(
    env: dict[str, str], bootstrap_servers: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    await ensure_topics(bootstrap_servers, topics.all, partitions=4)
    dataset_id = f"sums-{unique}"
    dataset = command(
        "RegisterDataset",
        {"dataset_id": dataset_id, "name": "sums", "examples": EXAMPLES, "dev_fraction": 0.3},
    )
    runs = {lm: _runs(lm, unique, dataset_id) for lm in ("down", "flaky")}
    setup = [dataset, *(register for by_name in runs.values() for register, _ in by_name.values())]
    ends: dict[tuple[str, str], dict[str, Any]] = {}
    # (calls, failed calls) the LM server answered during each run.
    calls: dict[tuple[str, str], tuple[int, int]] = {}
    with (
        OpenAIServer(_right_answer, fail_every=1, fail_status=401) as down,
        OpenAIServer(_right_answer, fail_every=3, fail_status=500) as flaky,
    ):
        servers = {"down": down, "flaky": flaky}
        worker_env = {
            **env,
            "DSPYOPS_LM_PROFILES": json.dumps({lm: _profile(s) for lm, s in servers.items()}),
            "DSPYOPS_TEST_LM_KEY": "not-a-real-key",
        }
        with WorkerProcess(worker_env, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap_servers, topics.results) as results:
                await send_commands(bootstrap_servers, topics, setup)
                done = await results.results_for([c.id for c in setup], timeout_s=90)
                # One run at a time: each sees its own calls 1, 2, 3, ... of its server.
                for lm, by_name in runs.items():
                    for name, (_, run) in by_name.items():
                        servers[lm].restart_count()
                        await send_commands(bootstrap_servers, topics, [run])
                        found = await results.results_for([run.id], timeout_s=120)
                        ends[lm, name] = found[run.id][-1]
                        calls[lm, name] = (servers[lm].calls, servers[lm].failed)
            assert worker.alive(), worker.log()

    for key, end in ends.items():
        kind = end["type"].removeprefix(RESULT)
        print(*key, calls[key], kind, json.dumps(end["data"]))
    dev = done[dataset.id][0]["data"]["dev_size"]
    assert dev >= 3
    errored = dev // 3

    # Every call fails: each run fails with the LM's code, saying how many examples failed.
    evaluation = ends["down", "evaluate"]
    assert evaluation["type"] == RESULT + "EvaluationFailed", evaluation
    assert evaluation["data"]["error"]["code"] == "lm_error"
    assert f"{dev} of {dev} examples failed" in evaluation["data"]["error"]["message"]
    assert "LMAuthError" in evaluation["data"]["error"]["message"]
    for name in ("labeled", "bootstrap"):
        failed = ends["down", name]
        assert failed["type"] == RESULT + "OptimizationFailed", failed
        assert failed["data"]["error"]["code"] == "lm_error"
        assert f"baseline: {dev} of {dev} examples failed" in failed["data"]["error"]["message"]

    # Every third call fails: the evaluation completes and counts the errored examples ...
    evaluation = ends["flaky", "evaluate"]
    assert evaluation["type"] == RESULT + "EvaluationCompleted", evaluation
    assert evaluation["data"]["errored"] == errored > 0
    assert evaluation["data"]["examples"] == dev
    # ... the others were answered right; errored ones count 0, as in dspy.Evaluate.
    assert evaluation["data"]["score"] == round((dev - errored) / dev, 4)
    # ... and the optimizations fail at the baseline, before any version is made.
    for name in ("labeled", "bootstrap"):
        failed = ends["flaky", name]
        assert failed["type"] == RESULT + "OptimizationFailed", failed
        assert failed["data"]["error"]["code"] == "examples_errored"
        message = failed["data"]["error"]["message"]
        assert f"baseline: {errored} of {dev} examples failed" in message
        assert "LMServerError" in message
    # One call per dev example in every run: the optimizations stopped after the baseline.
    assert [calls["down", name] for name in runs["down"]] == [(dev, dev)] * 3
    assert [calls["flaky", name] for name in runs["flaky"]] == [(dev, errored)] * 3

    store = open_store(env["DATABASE_URL"], env["DSPYOPS_EVENT_STORE_SCHEMA"])
    try:
        stored = store.evaluation(f"eval-flaky-evaluate-{unique}")
        marked = [(e["index"], e["error"]) for e in stored.per_example if "error" in e]
        assert marked == [(i, "lm_error") for i in range(2, dev, 3)]
        assert stored.errored == errored
        for lm, by_name in runs.items():
            for name in by_name:
                program = store.program(f"{lm}-{name}-{unique}")
                assert [v["number"] for v in program.versions] == [1]
    finally:
        store.close()
    schema = env["DSPYOPS_EVENT_STORE_SCHEMA"]
    stored_topics = [topic for *_, topic in stored_events(env["DATABASE_URL"], schema)]
    assert not [t for t in stored_topics if t.endswith("Program.Optimized")]
