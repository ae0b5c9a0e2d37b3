"""Building outcomes: handled records, rejections and the context of a command."""

from __future__ import annotations

from pydantic import ValidationError

from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.errors import AlreadyExists, DomainError, ErrorDict
from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.run import Run
from dspyops.events.commands import Command
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
    )


def run_context(run: Run, command_type: str) -> CommandContext:
    """The context of the command that asked for `run`, for events recorded later."""
    return CommandContext(command_type=command_type, **run.origin())


def rejected(ctx: CommandContext, exc: Exception, subject: str) -> Outcome:
    result = CommandRejected(command_type=ctx.command_type, errors=error_items(errors_of(exc)))
    return Outcome.of(result, subject)


def errors_of(exc: Exception) -> list[ErrorDict]:
    if isinstance(exc, DomainError):
        return exc.errors
    if isinstance(exc, SignatureError):
        return exc.errors()
    if isinstance(exc, ValidationFailed):
        return exc.errors
    if isinstance(exc, ValidationError):
        return [dict(e) for e in exc.errors(include_url=False, include_input=False)]
    return [{"loc": [], "msg": str(exc), "type": type(exc).__name__}]


def error_items(errors: list[ErrorDict]) -> list[ErrorItem]:
    return [
        ErrorItem(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            msg=str(error.get("msg", "")),
            type=str(error.get("type", "error")),
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
    for name in ("program_id", "dataset_id", "execution_id", "optimization_id", "evaluation_id"):
        value = getattr(command, name, None)
        if value:
            return str(value)
    return ctx.command_id


def typed(ctx: CommandContext, command_type: str) -> CommandContext:
    return ctx if ctx.command_type else ctx.model_copy(update={"command_type": command_type})


def check_same_command(owner: str, ctx: CommandContext, field: str, value: str) -> None:
    if owner != ctx.command_id:
        raise AlreadyExists(f"{field} {value!r} is used by another command", loc=[field])
