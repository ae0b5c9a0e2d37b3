"""`--log-format` and `--log-level`, the same for `dspyops worker`, `projector` and `api`."""

from __future__ import annotations

import logging.config
from typing import Annotated, Any

import typer

from dspyops.cli.console import fail
from dspyops.consumers.log_format import LogFormat, logging_config

LogLevelOpt = Annotated[
    str,
    typer.Option(
        "--log-level",
        "--loglevel",
        "-l",
        help="crit, error, warn, info or debug",
    ),
]
LogFormatOpt = Annotated[
    str,
    typer.Option(
        "--log-format",
        help="console (text) or json (one object per line); a worker's lines name the "
        "command (id, correlation id, type, trace id) of the work they are about",
    ),
]


def checked_format(log_format: str) -> LogFormat:
    if log_format not in ("json", "console"):
        fail(f"--log-format must be json or console, not {log_format!r}")
    return "json" if log_format == "json" else "console"


def configure(log_format: str, level: str) -> dict[str, Any]:
    """Applies the logging config and returns it (uvicorn takes it too)."""
    config = logging_config(checked_format(log_format), level)
    logging.config.dictConfig(config)
    return config
