"""`dspyops worker`: the stream processors (commands in, results and events out)."""

from __future__ import annotations

from dspyops.cli.console import fail
from dspyops.cli.log_options import LogFormatOpt, LogLevelOpt, checked_format
from dspyops.settings import get_settings


def worker(
    loglevel: LogLevelOpt = "warn",
    log_format: LogFormatOpt = "console",
) -> None:
    """Run a worker; start more of them to scale out (they share one consumer group)."""
    from dspyops.cli.infra.kafka import kafka_problem
    from dspyops.consumers.worker import run_worker

    settings = get_settings()
    problem = kafka_problem(settings.bootstrap_servers, settings.kafka_security)
    if problem is not None:
        hint = "run `dspyops infra up` or set KAFKA_BOOTSTRAP_SERVERS"
        fail(problem.message, problem.hint or hint)
    run_worker(settings, loglevel=loglevel, log_format=checked_format(log_format))
