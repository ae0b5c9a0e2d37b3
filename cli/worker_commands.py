"""`dspyops worker`: the stream processors (commands in, results and events out)."""

from __future__ import annotations

from typing import Annotated

import typer

from dspyops.cli.console import fail
from dspyops.cli.log_options import LogFormatOpt, LogLevelOpt, checked_format, configure
from dspyops.settings import get_settings

ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--processes",
        min=1,
        help="worker processes in one consumer group under this command, which restarts "
        "any that dies and stops them all on SIGTERM or Ctrl-C (default: "
        "DSPYOPS_WORKER_PROCESSES, else one per core; 1: this process is the worker)",
    ),
]


def worker(
    processes: ProcessesOpt = None,
    loglevel: LogLevelOpt = "warn",
    log_format: LogFormatOpt = "console",
) -> None:
    """Run the worker; more processes, here or on other machines, share one consumer group."""
    from dspyops.cli.infra.kafka import kafka_problem

    settings = get_settings()
    fmt = checked_format(log_format)
    problem = kafka_problem(settings.bootstrap_servers, settings.kafka_security)
    if problem is not None:
        hint = "run `dspyops infra up` or set KAFKA_BOOTSTRAP_SERVERS"
        fail(problem.message, problem.hint or hint)
    from dspyops.cli.worker_processes import GaveUp, process_count, run_processes

    count = process_count(processes, settings.worker_processes)
    if count == 1:
        from dspyops.consumers.worker import run_worker

        run_worker(settings, loglevel=loglevel, log_format=fmt)
        return
    configure(fmt, loglevel)
    try:
        run_processes(settings, count, loglevel=loglevel, log_format=fmt)
    except GaveUp as exc:
        fail(str(exc), code=exc.code)
