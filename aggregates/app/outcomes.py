"""Building outcomes: handled records, rejections and the context of a command."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.errors import AlreadyExists, DomainError, ErrorDict, IdReused
from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.run import Run
from dspyops.events.commands import Command
from dspyops.events.envelope import SUBJECT_FIELDS
from dspyops.events.results import CommandRejected, ErrorItem
from dspyops.signatures import SignatureError, ValidationFailed


def handled_record(ctx: CommandContext, outcome: Outcome) -> HandledCommand:
    return HandledCommand(
        command_id=ctx.command_id,
        command_type=ctx.command_type,
        result_type=outcome.result_type,
        subject=outcome.subject,
        data=outcome.data,
        correlation_id=ctx.correlation_id,
        actor=ctx.actor,
        payload_digest=ctx.payload_digest,
    )


def run_context(run: Run, command_type: str) -> CommandContext:
    """The context of the command that asked for `run`, for events recorded later."""
    return CommandContext(
        command_type=command_type, payload_digest=run.payload_digest, **run.origin()
    )


def rejected(ctx: CommandContext, exc: Exception, subject: str) -> Outcome:
    result = CommandRejected(command_type=ctx.command_type, errors=error_items(errors_of(exc)))
    return Outcome.of(result, subject)


def errors_of(exc: Exception) -> list[ErrorDict]:
    """The problems `exc` reports; only a DomainError's carry their `ctx` figures (the
    others' come from pydantic and say nothing a client needs beyond `msg`)."""
    if isinstance(exc, DomainError):
        return exc.errors
    if isinstance(exc, SignatureError):
        found = exc.errors()
    elif isinstance(exc, ValidationFailed):
        found = exc.errors
    elif isinstance(exc, ValidationError):
        found = [dict(e) for e in exc.errors(include_url=False, include_input=False)]
    else:
        return [{"loc": [], "msg": str(exc), "type": type(exc).__name__}]
    return [{k: v for k, v in e.items() if k != "ctx"} for e in found]


def error_items(errors: list[ErrorDict]) -> list[ErrorItem]:
    return [
        ErrorItem(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "error")),
            ctx=_plain_ctx(error.get("ctx")),
        )
        for error in errors
    ]


# Commands that start something with an id of its own (the command id if not given):
# their outcomes are about that execution or run.
_STARTS = {
    "ExecuteProgram": "execution_id",
    "OptimizeProgram": "optimization_id",
    "EvaluateProgram": "evaluation_id",
}


def subject_of(command: Command, ctx: CommandContext) -> str:
    """The user-facing id a command is about: its subject on the results topic."""
    started = _STARTS.get(type(command).__name__)
    if started is not None:
        return str(getattr(command, started, None) or ctx.command_id)
    for name in SUBJECT_FIELDS:
        value = getattr(command, name, None)
        if value:
            return str(value)
    return ctx.command_id


def check_same_command(
    owner: str, ctx: CommandContext, field: str, value: str, digest: str | None = None
) -> None:
    """`value` (an execution or run id) belongs to this command: same id, same payload."""
    if owner != ctx.command_id:
        raise AlreadyExists(f"{field} {value!r} is used by another command", loc=[field])
    if digest is not None and ctx.payload_digest is not None and digest != ctx.payload_digest:
        raise id_reused(ctx)


def id_reused(ctx: CommandContext) -> IdReused:
    return IdReused(
        f"command id {ctx.command_id!r} was used before by a command with another type or "
        "payload; send a new id for a new command",
        loc=["id"],
    )


# Fixed forever: changing how the digest is made would refuse commands sent again after
# an upgrade (a redelivery after a crash) as reused ids. A new scheme gets a new prefix.
DIGEST_SCHEME = "v1"


def payload_digest(command: Command) -> str:
    """Digest of a command's type and the fields its producer sent (validated).

    Only fields the producer set count: a field added to the command later, with a
    default, leaves the digest of the same message unchanged.
    """
    canonical = json.dumps(
        [type(command).__name__, command.model_dump(mode="json", exclude_unset=True)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return DIGEST_SCHEME + ":" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _plain_ctx(ctx: Any) -> dict[str, Any] | None:
    """An error's figures when they are plain JSON values (pydantic's own `ctx` can hold
    the exception object a validator raised: that stays out)."""
    if not isinstance(ctx, dict):
        return None
    plain = (str, int, float, bool, type(None))
    return {str(k): v for k, v in ctx.items() if isinstance(v, plain)} or None
