"""A plugin program that fans out with `dspy.Parallel`, run by a real worker with tracing
on: every predictor span from DSPy's worker threads hangs under the program's span, and
every LM span under its predictor's, in the one OTLP trace of the command
(runtime.dspy_threads)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.lm_replies import Messages, output_fields
from tests.support.openai_server import OpenAIServer, chat_reply
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.worker_process import WorkerProcess

TRACE_ID = "1af7651916cd43dd8448eb211c80319d"
PARENT_ID = "c7ad6b7169203332"
DRAFTS = 3
PLUGIN = f"""
    import asyncio

    import dspy


    class FanOut(dspy.Module):
        dspyops_signature = "question: str -> answer: str"

        def __init__(self, context):
            super().__init__()
            self.context = context
            self.draft = dspy.Predict("question: str -> answer: str")
            self.pick = dspy.Predict("question: str, drafts: list[str] -> answer: str")

        def forward(self, question):
            parallel = dspy.Parallel(num_threads={DRAFTS}, disable_progress_bar=True)
            pairs = [(self.draft, {{"question": f"{{question}} {{n}}"}}) for n in range({DRAFTS})]
            drafts = [d.answer for d in parallel(pairs)]
            return dspy.Prediction(answer=self.pick(question=question, drafts=drafts).answer)

        async def aforward(self, question):
            return await asyncio.to_thread(self.forward, question=question)
"""


def install_plugin(root: Path) -> None:
    """The plugin as an installed distribution on the worker's PYTHONPATH."""
    (root / "fanout_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "fanout_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fanout-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dspyops.modules]\nfanout = fanout_plugin:FanOut\n")


def reply(messages: Messages) -> str:
    return chat_reply(**{name: "x" for name in output_fields(messages)})


async def test_predictor_spans_from_parallel_threads_have_the_programs_span_as_parent(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    install_plugin(plugins)
    program_id = f"fanout-{unique}"
    with OpenAIServer(reply, usage=(20, 5)) as lm, OtlpReceiver() as otlp:
        profiles = {
            "default": {"model": "openai/test-model", "api_base": lm.base_url, "num_retries": 0}
        }
        worker_env = {
            **env,
            "PYTHONPATH": str(plugins),
            "DSPYOPS_LM_PROFILES": json.dumps(profiles),
            "OPENAI_API_KEY": "k",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        register = command(
            "RegisterProgram", {"program_id": program_id, "name": "f", "module": "plugin:fanout"}
        )
        execute = command(
            "ExecuteProgram", {"program_id": program_id, "inputs": {"question": "Q?"}}
        ).model_copy(update={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        with WorkerProcess(worker_env, tmp_path / "worker.log") as worker:
            async with TopicReader(bootstrap, topics.results) as results:
                for envelope in [register, execute]:
                    await send_commands(bootstrap, topics, [envelope])
                    (result,) = (await results.results_for([envelope.id], timeout_s=120))[
                        envelope.id
                    ]
                    assert not result["type"].endswith(("Rejected", "Failed")), (
                        result,
                        worker.log(),
                    )
            # The root (the worker's span under the command's parent) ends last, after the
            # result is out: wait for it too, not only for the LM calls.
            spans = otlp.wait_for(
                TRACE_ID,
                lambda s: (
                    len(_named(s, "lm ")) == DRAFTS + 1
                    and any(span.parent_span_id == PARENT_ID for span in s)
                ),
            )

    assert result["data"]["usage"]["total_tokens"] == 25 * (DRAFTS + 1), result
    by_id = {span.span_id: span for span in spans}
    (program,) = _named(spans, "program ")
    predictors = _named(spans, "predictor ")
    assert sorted(span.name for span in predictors) == ["predictor draft"] * DRAFTS + [
        "predictor pick"
    ]
    assert all(span.parent_span_id == program.span_id for span in predictors)
    lm_spans = _named(spans, "lm ")
    assert len(lm_spans) == DRAFTS + 1
    # Each LM call under its own predictor, with the tokens of its own call.
    assert all(by_id[span.parent_span_id] in predictors for span in lm_spans)
    assert len({span.parent_span_id for span in lm_spans}) == DRAFTS + 1
    assert all(span.attributes["llm.token_count.total"] == 25 for span in lm_spans)
    (root,) = [span for span in spans if span.parent_span_id == PARENT_ID]
    assert all(span.parent_span_id in by_id for span in spans if span is not root)


def _named(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name.startswith(prefix)]
