"""`dspyops worker`: the stream processors (commands in, results and events out)."""

from __future__ import annotations

from typing import Annotated

import typer

from dspyops.cli.console import fail
from dspyops.settings import get_settings


def worker(
    loglevel: Annotated[
        str,
        typer.Option(
            "--log-level",
            "--loglevel",
            "-l",
            help="crit, error, warn, info (a line per command handled) or debug",
        ),
    ] = "warn",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="console (text) or json (one object per line); both name the command "
            "(id, correlation id, type, trace id) on every line of its work",
        ),
    ] = "console",
) -> None:
    """Run a worker; start more of them to scale out (they share one consumer group)."""
    from dspyops.cli.infra.kafka import metadata_answers
    from dspyops.consumers.worker import run_worker

    settings = get_settings()
    if not metadata_answers(settings.bootstrap_servers):
        fail(
            f"Kafka at {settings.bootstrap_servers} does not answer",
            "run `dspyops infra up` or set KAFKA_BOOTSTRAP_SERVERS",
        )
    if log_format not in ("json", "console"):
        fail(f"--log-format must be json or console, not {log_format!r}")
    run_worker(
        settings, loglevel=loglevel, log_format="json" if log_format == "json" else "console"
    )
