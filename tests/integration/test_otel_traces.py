"""OpenTelemetry from a real worker process: a pipeline's execution sent with a known W3C
`traceparent` arrives at a loopback OTLP/HTTP receiver as one tree, parent links intact,
from the command's consumer span down to each LM call; the result carries the context on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.lm_replies import Messages, output_fields
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.worker_process import WorkerProcess

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
DOCUMENTS = [
    {"id": "d1", "text": "Paris is the capital and largest city of France."},
    {"id": "d2", "text": "Berlin is the capital of Germany."},
]
PIPELINE = {
    "signature": "question: str -> answer: str",
    "steps": [
        {"name": "query", "kind": "Predict", "signature": "question: str -> query: str"},
        {
            "name": "retrieve",
            "kind": "Retrieve",
            "corpus": "CORPUS",
            "k": 1,
            "bindings": {"query": "query.query"},
        },
        {
            "name": "answer",
            "kind": "ChainOfThought",
            "signature": "question: str, context: list[str] -> answer: str",
            "bindings": {"context": "retrieve.passages"},
        },
    ],
}


def reply(messages: Messages) -> str:
    values = {"query": "capital of France", "reasoning": "d1 says so", "answer": "Paris"}
    return chat_reply(**{name: values.get(name, "x") for name in output_fields(messages)})


async def test_a_pipeline_execution_is_one_otlp_trace_under_the_callers_span(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    corpus, program_id = f"docs-{unique}", f"rag-{unique}"
    program = json.loads(json.dumps(PIPELINE).replace("CORPUS", corpus))
    with OpenAIServer(reply, usage=(30, 7)) as lm, OtlpReceiver() as otlp:
        profiles = {
            "default": {"model": "openai/test-model", "api_base": lm.base_url, "num_retries": 0}
        }
        worker_env = {
            **env,
            "DSPYOPS_LM_PROFILES": json.dumps(profiles),
            "OPENAI_API_KEY": "k",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_SERVICE_NAME": f"worker-{unique}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        setup = [
            command("RegisterCorpus", {"corpus_id": corpus, "name": "d", "documents": DOCUMENTS}),
            command("RegisterProgram", {"program_id": program_id, "name": "rag", **program}),
        ]
        execute = command(
            "ExecuteProgram",
            {"program_id": program_id, "inputs": {"question": "Capital of France?"}},
        ).model_copy(update={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        with WorkerProcess(worker_env, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap, topics.results) as results:
                for envelope in [*setup, execute]:
                    await send_commands(bootstrap, topics, [envelope])
                    got = await results.results_for([envelope.id], timeout_s=120)
                    (result,) = got[envelope.id]
                    assert not result["type"].endswith("Rejected"), (result, worker.log())
            spans = otlp.wait_for(TRACE_ID, _complete)

    assert result["type"] == "dspyops.result.ExecutionSucceeded", result
    tree = _tree(spans)
    (root,) = [span for span in spans if span.parent_span_id == PARENT_ID]
    assert root.name == "process ExecuteProgram"
    assert root.service == f"worker-{unique}"
    assert root.attributes["messaging.destination.name"] == topics.executions
    # Consume -> validate and plan (handle) -> program and record (run) -> publish.
    assert tree(root) == ["handle", "run", "publish"]
    (publish,) = [span for span in spans if span.name == "publish"]
    assert publish.attributes["messaging.destination.name"] == topics.results
    (run,) = [span for span in spans if span.name == "run"]
    assert tree(run) == ["program program", "record"]
    (program_span,) = [span for span in spans if span.name == "program program"]
    assert tree(program_span) == ["step query", "retrieval retrieve", "step answer"]
    (retrieval,) = [span for span in spans if span.name == "retrieval retrieve"]
    assert retrieval.attributes["openinference.span.kind"] == "RETRIEVER"
    assert retrieval.attributes["retrieval.documents.0.document.id"] == "d1"
    llm = [span for span in spans if span.attributes.get("openinference.span.kind") == "LLM"]
    assert len(llm) == 2
    assert all(span.attributes["llm.model_name"] == "openai/test-model" for span in llm)
    assert all(span.attributes["llm.token_count.total"] == 37 for span in llm)
    # Parent links intact: every span but the root hangs from a span of this trace.
    ids = {span.span_id for span in spans}
    assert all(span.parent_span_id in ids for span in spans if span is not root)
    assert all(span.start_ns <= span.end_ns for span in spans)
    # The result continues the trace: its traceparent names the command's span.
    assert result["traceparent"] == f"00-{TRACE_ID}-{root.span_id}-01"


def _complete(spans: list[ReceivedSpan]) -> bool:
    names = {span.name for span in spans}
    llm = [span for span in spans if span.attributes.get("openinference.span.kind") == "LLM"]
    wanted = {"process ExecuteProgram", "record", "step answer", "publish"}
    return wanted <= names and len(llm) == 2


def _tree(spans: list[ReceivedSpan]) -> Any:
    def children(parent: ReceivedSpan) -> list[str]:
        found = [span for span in spans if span.parent_span_id == parent.span_id]
        return [span.name for span in sorted(found, key=lambda span: span.start_ns)]

    return children
