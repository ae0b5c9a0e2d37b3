"""The worker's log lines name the command they were made for, as JSON or text, and are
redacted before they are formatted."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from dspyops.aggregates.app import DspyOps, in_memory_env
from dspyops.consumers.log_format import (
    CommandFields,
    ConsoleFormatter,
    JsonFormatter,
    command_logging,
    level_name,
)
from dspyops.consumers.log_redaction import redact_record
from dspyops.consumers.processing import Processor
from dspyops.consumers.records import Incoming
from dspyops.consumers.run_threads import in_run_thread
from dspyops.events.codec import encode
from dspyops.events.envelope import command_envelope
from dspyops.events.topics import Topics
from dspyops.runtime.redaction import Redactor

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Lines(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(CommandFields())
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    handler = Lines(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_every_line_of_a_commands_work_names_it(json_lines: Lines) -> None:
    processor = Processor(DspyOps(in_memory_env()), Topics("t."))
    command = command_envelope(
        "RegisterProgram", {"program_id": "p", "name": "p", "signature": "q: str -> a: str"}
    ).model_copy(update={"traceparent": TRACEPARENT})

    await processor.process(Incoming("t.commands.programs", 0, 0, b"p", encode(command)))
    logging.getLogger("after").info("not for a command")

    lines = [json.loads(line) for line in json_lines.lines]
    handled = next(line for line in lines if line["message"].startswith("handled"))
    assert handled["message"] == "handled: ProgramRegistered"
    assert handled["command_id"] == command.id
    assert handled["correlation_id"] == command.correlation_id
    assert handled["command_type"] == "RegisterProgram"
    assert handled["trace_id"] == TRACE_ID
    assert handled["level"] == "info"
    assert lines[-1]["message"] == "not for a command"
    assert "command_id" not in lines[-1]


def test_json_lines_are_redacted_before_they_are_formatted() -> None:
    key = "sk-live-0123456789abcdef0123"
    redactor = Redactor({key: "[REDACTED]"})
    try:
        raise RuntimeError(f"upstream refused {key}")
    except RuntimeError:
        record = logging.LogRecord(
            "litellm", logging.ERROR, __file__, 1, "call with %s failed", (key,), None
        )
        record.exc_info = sys.exc_info()
    CommandFields().filter(record)

    line = JsonFormatter().format(redact_record(record, redactor))

    assert key not in line
    parsed = json.loads(line)
    assert parsed["message"] == "call with [REDACTED] failed"
    assert "upstream refused [REDACTED]" in parsed["exception"]


def test_console_lines_name_the_command() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "slow", (), None)
    with command_logging("c-1", "corr", "ExecuteProgram", None):
        CommandFields().filter(record)
    assert "[ExecuteProgram c-1] slow" in ConsoleFormatter().format(record)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("crit", "CRITICAL"), ("warn", "WARNING"), ("info", "INFO"), ("DEBUG", "DEBUG")],
)
def test_fausts_level_names_are_the_standard_librarys(given: str, expected: str) -> None:
    assert level_name(given) == expected


async def test_a_runs_thread_logs_under_its_command(json_lines: Lines) -> None:
    """An optimization's DSPy work runs in a pool thread; its lines still name the command."""
    with ThreadPoolExecutor(1) as pool, command_logging("cmd-7", "corr-7", "OptimizeProgram", None):
        await in_run_thread(
            pool, lambda: logging.getLogger("dspyops.runtime.optimize").warning("trial 3")
        )
    (line,) = [json.loads(line) for line in json_lines.lines if "trial 3" in line]
    assert (line["command_id"], line["command_type"]) == ("cmd-7", "OptimizeProgram")
