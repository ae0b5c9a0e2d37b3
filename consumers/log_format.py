"""The worker's log lines: JSON or console text, each line of a command's work naming it.

While a worker handles a command (``command_logging``), every log record made in that
task, by dspyops or by any library, carries ``command_id``, ``correlation_id``,
``command_type`` and ``trace_id``/``span_id`` (the command's W3C trace, from the
OpenTelemetry span when tracing is on, else from the command's ``traceparent``). The
formatters write them: ``json``, one object per line for a log pipeline, or
``console``, text for people. Records are redacted before any formatter sees them
(``consumers.log_redaction``), so neither format can print a key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from dspyops.tracing import current_span_context

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
FIELDS = ("command_id", "correlation_id", "command_type", "trace_id", "span_id")

_command: ContextVar[dict[str, str] | None] = ContextVar("dspyops_log_command", default=None)


@contextmanager
def command_logging(
    command_id: str, correlation_id: str, command_type: str, traceparent: str | None
) -> Iterator[None]:
    """Log records made inside the block name this command."""
    fields = {
        "command_id": command_id,
        "correlation_id": correlation_id,
        "command_type": command_type,
    }
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        fields.update(trace_id=parts[1], span_id=parts[2])
    token = _command.set(fields)
    try:
        yield
    finally:
        _command.reset(token)


class CommandFields(logging.Filter):
    """Puts the current command's fields on each record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = dict(_command.get() or {})
        span = current_span_context()
        if span is not None:
            fields.update(trace_id=f"{span.trace_id:032x}", span_id=f"{span.span_id:016x}")
        for name in FIELDS:
            setattr(record, name, fields.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the command's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    """``time level logger [command type id] message``, for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(command)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        command_id = getattr(record, "command_id", None)
        record.command = (
            f" [{getattr(record, 'command_type', '')} {command_id}]" if command_id else ""
        )
        return super().format(record)


def level_name(level: str) -> str:
    """faust's level names (crit, warn, ...) as the standard library's."""
    lower = level.strip().lower()
    return {"crit": "CRITICAL", "warn": "WARNING", "fatal": "CRITICAL"}.get(lower, lower.upper())


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker (faust's `logging_config`)."""
    formatter = JsonFormatter if log_format == "json" else ConsoleFormatter
    level = level_name(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"command": {"()": CommandFields}},
        "formatters": {"dspyops": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["command"],
                "formatter": "dspyops",
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
    }
