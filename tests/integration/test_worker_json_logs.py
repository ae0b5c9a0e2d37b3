"""A real worker with `--log-format json --log-level info`: every line it writes is one JSON
object (faust's and aiokafka's lines too), the lines of a command's work name it, and a
known fake LM key that an LM echoes back never appears."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.topics import Topics
from tests.support.kafka import TopicReader, command, send_commands
from tests.support.openai_server import OpenAIServer
from tests.support.worker_process import WorkerProcess

KEY = "sk-json-logs-5f1e0d9c8b7a6f5e4d3c"
TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"


async def test_json_lines_name_the_command_and_never_the_key(
    env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    program_id = f"logs-{unique}"

    def unused(messages: Any) -> str:
        return "never asked"

    # Every call fails 401 with a message that echoes the key the server received.
    with OpenAIServer(unused, fail_every=1, fail_status=401) as lm:
        profiles = {
            "default": {
                "model": "openai/test-model",
                "api_base": lm.base_url,
                "api_key_env": "JSON_LOGS_KEY",
                "num_retries": 0,
            }
        }
        worker_env = {**env, "DSPYOPS_LM_PROFILES": json.dumps(profiles), "JSON_LOGS_KEY": KEY}
        register = command(
            "RegisterProgram",
            {"program_id": program_id, "name": "p", "signature": "question: str -> answer: str"},
        )
        execute = command(
            "ExecuteProgram", {"program_id": program_id, "inputs": {"question": "?"}}
        ).model_copy(update={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
        log = tmp_path / "worker.log"
        args = ("--log-format", "json", "--log-level", "info")
        with WorkerProcess(worker_env, log, args) as worker:
            async with TopicReader(bootstrap, topics.results) as results:
                for envelope in (register, execute):
                    await send_commands(bootstrap, topics, [envelope])
                    (result,) = (await results.results_for([envelope.id], timeout_s=120))[
                        envelope.id
                    ]
            worker.stop()

    assert result["type"] == "dspyops.result.ExecutionFailed", result
    text = log.read_text()
    assert KEY not in text
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(parsed[0])
    handled = [p for p in parsed if p.get("command_id") == execute.id]
    assert any(p["message"] == "handled: ExecutionFailed" for p in handled), handled
    assert all(p["trace_id"] == TRACE_ID for p in handled)
    assert all(p["correlation_id"] == execute.correlation_id for p in handled)
    assert any(p.get("command_id") == register.id for p in parsed)
