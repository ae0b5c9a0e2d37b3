"""An evaluation and an optimization on a real worker with tracing on: each run's phases
are spans under its `run` span, every program call (an example scored, a demo
bootstrapped) a `program` span in its phase, and its LM call an LLM span under it with
its tokens (runtime.run_trace), all in the run command's OTLP trace."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.optimization import ANSWERS, EXAMPLES, SIGNATURE
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.worker_process import WorkerProcess

EVALUATION_TRACE = "2af7651916cd43dd8448eb211c80319e"
OPTIMIZATION_TRACE = "3af7651916cd43dd8448eb211c80319f"
PARENT_ID = "d7ad6b7169203333"
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(.*?)\n")


def _right_answer(messages: list[dict[str, Any]]) -> str:
    questions = _QUESTION.findall(str(messages[-1]["content"]))
    return chat_reply(answer=ANSWERS.get(questions[-1], "?") if questions else "?")


async def test_a_runs_lm_calls_are_spans_under_its_phases(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    dataset_id, program_id = f"sums-{unique}", f"add-{unique}"
    target = {"program_id": program_id, "dataset_id": dataset_id, "metric": "exact_match"}
    setup = [
        command(
            "RegisterDataset",
            {"dataset_id": dataset_id, "name": "s", "examples": EXAMPLES, "dev_fraction": 0.3},
        ),
        command("RegisterProgram", {"program_id": program_id, "name": "a", "signature": SIGNATURE}),
    ]
    evaluate = command("EvaluateProgram", {**target, "evaluation_id": f"eval-{unique}"}).model_copy(
        update={"traceparent": f"00-{EVALUATION_TRACE}-{PARENT_ID}-01"}
    )
    optimize = command(
        "OptimizeProgram",
        {
            **target,
            "optimizer": "BootstrapFewShot",
            "config": {"max_bootstrapped_demos": 2, "max_labeled_demos": 1},
        },
    ).model_copy(update={"traceparent": f"00-{OPTIMIZATION_TRACE}-{PARENT_ID}-01"})
    with OpenAIServer(_right_answer, usage=(30, 7)) as lm, OtlpReceiver() as otlp:
        profiles = {
            "default": {"model": "openai/test-model", "api_base": lm.base_url, "num_retries": 0}
        }
        worker_env = {
            **env,
            "DSPYOPS_LM_PROFILES": json.dumps(profiles),
            "OPENAI_API_KEY": "k",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with WorkerProcess(worker_env, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap, topics.results) as results:
                ends = {}
                # The runs only once the dataset and program are there; both runs at once.
                for batch in (setup, [evaluate, optimize]):
                    await send_commands(bootstrap, topics, batch)
                    got = await results.results_for([c.id for c in batch], timeout_s=120)
                    for envelope in batch:
                        ends[envelope.id] = end = got[envelope.id][-1]
                        assert end["type"].endswith(("Registered", "Completed")), (
                            end,
                            worker.log(),
                        )
            dev = ends[setup[0].id]["data"]["dev_size"]
            evaluation = otlp.wait_for(EVALUATION_TRACE, _root_ended)
            optimization = otlp.wait_for(OPTIMIZATION_TRACE, _root_ended)

    # The evaluation: one phase, a program span per dev example, its LM call under it.
    (run,) = _named(evaluation, "run")
    (score,) = _children(evaluation, run, "score")
    programs = _children(evaluation, score, "program program")
    assert len(programs) == dev
    for program in programs:
        (call,) = _children(evaluation, program, "lm openai/test-model")
        assert call.attributes["openinference.span.kind"] == "LLM"
        assert call.attributes["llm.token_count.total"] == 37
    assert score.attributes["dspyops.spans.kept"] == 2 * dev
    assert score.attributes["dspyops.spans.dropped"] == 0

    # The optimization: its three phases in order (among the progress results' `publish`),
    # each with its program calls.
    (run,) = _named(optimization, "run")
    phases = [span for span in _children(optimization, run) if span.name != "publish"]
    assert [span.name for span in phases] == ["baseline", "compile", "optimized"]
    for phase in phases:
        programs = _children(optimization, phase, "program program")
        assert programs, phase.name
        assert phase.attributes["dspyops.spans.kept"] == 2 * len(programs)
        for program in programs:
            assert len(_children(optimization, program, "lm openai/test-model")) == 1
    assert len(_children(optimization, phases[0], "program program")) == dev
    # Parent links intact: every span but the root hangs from a span of its trace.
    for spans in (evaluation, optimization):
        ids = {span.span_id for span in spans}
        assert all(span.parent_span_id in ids | {PARENT_ID} for span in spans)


def _root_ended(spans: list[ReceivedSpan]) -> bool:
    # The command's span ends last, after its result is out.
    return any(span.parent_span_id == PARENT_ID for span in spans)


def _named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def _children(
    spans: list[ReceivedSpan], parent: ReceivedSpan, name: str | None = None
) -> list[ReceivedSpan]:
    found = [s for s in spans if s.parent_span_id == parent.span_id]
    return sorted((s for s in found if name is None or s.name == name), key=lambda s: s.start_ns)
