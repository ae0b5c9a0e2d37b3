"""`dspyops online-eval PROGRAM --judge ID [--sample-percent N]`: score a sample of the
program's executions with a judge program (SetOnlineEvaluation); `--stop` ends it.

Built and checked like `alias` and `split` (cli/routing_commands.py): the contract's model
first (a bad judge reference or percent is one line and exit 2, before Kafka), then
published as `send` does, printing the terminal result. Whether the judge exists and
fits is the worker's rule: a breach comes back as CommandRejected.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dspyops.cli import send_commands
from dspyops.cli.console import EXIT_USAGE, JsonOpt, fail
from dspyops.cli.routing_commands import ReasonOpt, check_payload
from dspyops.events.commands import SetOnlineEvaluation


def online_eval(
    program_id: Annotated[str, typer.Argument(metavar="PROGRAM", help="The program judged.")],
    judge: Annotated[
        str | None,
        typer.Option(
            help="The judge program, optionally at an alias: grader, grader@production "
            "(no alias: its deployed, else latest, version)."
        ),
    ] = None,
    sample_percent: Annotated[
        float | None,
        typer.Option(help="The share of executions judged, over 0 up to 100 (default 10)."),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Judge none any more.")] = False,
    reason: ReasonOpt = None,
    command_id: send_commands.CommandIdOpt = None,
    actor: send_commands.ActorOpt = None,
    timeout: send_commands.TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Judge a sample of PROGRAM's executions with a judge program, each picked by its
    execution id (SetOnlineEvaluation), or stop with --stop; print the result."""
    if stop and (judge is not None or sample_percent is not None):
        fail("give --judge (and --sample-percent), or --stop, not both", code=EXIT_USAGE)
    if not stop and judge is None:
        fail("give the --judge program, or --stop", code=EXIT_USAGE)
    payload: dict[str, Any] = {"program_id": program_id, "judge": judge}
    if sample_percent is not None:
        payload["sample_percent"] = sample_percent
    if reason is not None:
        payload["reason"] = reason
    check_payload(SetOnlineEvaluation, payload)
    send_commands.publish(
        "SetOnlineEvaluation", payload, command_id, None, actor, timeout, False, json_out
    )
