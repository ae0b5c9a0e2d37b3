"""`dspyops alias` and `dspyops split`: point an alias at a version (SetAlias, RemoveAlias)
and share an alias's executions between versions (SetTrafficSplit).

Each builds its command from arguments, checks it against the contract's model (so a bad
alias name or percent is one line and exit 2, before Kafka), then publishes it as `send`
does and prints the terminal result. The rules that need the program (weights summing to
100, versions that exist) are the worker's: a breach comes back as CommandRejected.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from dspyops.cli import send_commands
from dspyops.cli.console import EXIT_USAGE, JsonOpt, fail
from dspyops.events.commands import RemoveAlias, SetAlias, SetTrafficSplit

ReasonOpt = Annotated[
    str | None, typer.Option(help="Why; kept in the audit trail and the serving history.")
]


def alias(
    program_id: Annotated[str, typer.Argument(metavar="PROGRAM", help="The program.")],
    alias_name: Annotated[
        str, typer.Argument(metavar="ALIAS", help="e.g. staging, canary (not production).")
    ],
    version: Annotated[
        int | None, typer.Argument(metavar="VERSION", help="The version it points at.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    reason: ReasonOpt = None,
    command_id: send_commands.CommandIdOpt = None,
    actor: send_commands.ActorOpt = None,
    timeout: send_commands.TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Point ALIAS at VERSION (SetAlias), or remove it with --remove (RemoveAlias); print the
    result. `production` moves by deploy and rollback only."""
    if remove and version is not None:
        fail("give a VERSION to point the alias at, or --remove, not both", code=EXIT_USAGE)
    if not remove and version is None:
        fail("give the VERSION to point the alias at, or --remove", code=EXIT_USAGE)
    payload: dict[str, Any] = {"program_id": program_id, "alias": alias_name}
    if version is not None:
        payload["version"] = version
    if reason is not None:
        payload["reason"] = reason
    model: type[BaseModel] = RemoveAlias if remove else SetAlias
    check_payload(model, payload)
    send_commands.publish(
        model.__name__, payload, command_id, None, actor, timeout, False, json_out
    )


def split(
    program_id: Annotated[str, typer.Argument(metavar="PROGRAM", help="The program.")],
    weights: Annotated[
        list[str],
        typer.Argument(
            metavar="VERSION=PERCENT...",
            help="Whole percents summing to 100, the alias's own version among them: "
            "2=90 3=10. Its version alone at 100 ends the split.",
        ),
    ],
    alias_name: Annotated[str, typer.Option("--alias", help="The alias split.")] = "production",
    max_error_rate: Annotated[
        float | None,
        typer.Option(
            help="Guard: take a candidate arm out when more than this share (0..1) of its "
            "last --window executions failed."
        ),
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="Guard: executions counted (default 50); needs the rate.")
    ] = None,
    reason: ReasonOpt = None,
    command_id: send_commands.CommandIdOpt = None,
    actor: send_commands.ActorOpt = None,
    timeout: send_commands.TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Share the executions addressed to an alias between versions by weight
    (SetTrafficSplit), routed by each execution's routing key; print the result."""
    payload: dict[str, Any] = {
        "program_id": program_id,
        "alias": alias_name,
        "weights": parse_weights(weights),
    }
    if window is not None and max_error_rate is None:
        fail("--window needs --max-error-rate: it sizes the guard", code=EXIT_USAGE)
    if max_error_rate is not None:
        guard: dict[str, Any] = {"max_error_rate": max_error_rate}
        if window is not None:
            guard["window"] = window
        payload["guard"] = guard
    if reason is not None:
        payload["reason"] = reason
    check_payload(SetTrafficSplit, payload)
    send_commands.publish(
        "SetTrafficSplit", payload, command_id, None, actor, timeout, False, json_out
    )


def parse_weights(given: list[str]) -> dict[str, int]:
    """`["2=90", "3=10"]` as the command's `{"2": 90, "3": 10}`; a usage error otherwise."""
    weights: dict[str, int] = {}
    for item in given:
        version, sep, percent = item.partition("=")
        if not sep:
            fail(f"{item!r} is not VERSION=PERCENT", "e.g. 2=90 3=10", code=EXIT_USAGE)
        if not _digits(version) or int(version) < 1:
            fail(f"{item!r}: {version!r} is not a version number", code=EXIT_USAGE)
        if not _digits(percent):
            fail(f"{item!r}: {percent!r} is not a whole percent (1..100)", code=EXIT_USAGE)
        key = str(int(version))
        if key in weights:
            fail(f"version {key} is given twice", code=EXIT_USAGE)
        weights[key] = int(percent)
    return weights


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_payload(model: type[BaseModel], payload: dict[str, Any]) -> None:
    """The contract's own validation, reported as one line naming the field at fault."""
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__
        fail(f"{model.__name__}: {where}: {first['msg']}", code=EXIT_USAGE)
