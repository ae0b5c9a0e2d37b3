"""What a command can end in besides success, as exceptions a caller can catch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dspyops.events.results import CommandRejected, ErrorInfo, ErrorItem

if TYPE_CHECKING:
    from dspyops.client.refusals import KafkaRefusal
    from dspyops.client.replies import Reply


class CommandError(Exception):
    """A command did not succeed; `reply` is the terminal result when there is one."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class CommandRejectedError(CommandError):
    """`CommandRejected`: validation or lifecycle error, nothing was changed."""

    def __init__(self, reply: Reply, errors: list[ErrorItem]) -> None:
        described = "; ".join(_describe(e) for e in errors) or "no details"
        super().__init__(f"{reply.command_type} rejected: {described}", reply)
        self.errors = errors


class CommandFailedError(CommandError):
    """`ExecutionFailed`, `OptimizationFailed`, `EvaluationFailed` or `DeploymentRefused`,
    with its error."""

    def __init__(self, reply: Reply, error: ErrorInfo) -> None:
        super().__init__(f"{reply.type}: {error.code}: {error.message}", reply)
        self.error = error


class CommandTimeoutError(CommandError, TimeoutError):
    """No terminal result arrived in time; the command may still be answered later."""

    def __init__(self, command_id: str, timeout_s: float) -> None:
        super().__init__(f"no result for command {command_id} within {timeout_s:g}s")
        self.command_id = command_id
        self.timeout_s = timeout_s


class TopicsMissingError(CommandError):
    """The results topic does not exist: no worker has prepared this topic prefix yet."""


def _describe(error: ErrorItem) -> str:
    where = ".".join(str(part) for part in error.loc)
    return f"{where}: {error.msg}" if where else error.msg


def raise_for(reply: Reply) -> None:
    """Raise the exception a rejected or failed terminal result stands for."""
    if isinstance(reply.result, CommandRejected):
        raise CommandRejectedError(reply, list(reply.result.errors))
    error = reply.error
    if error is not None:
        raise CommandFailedError(reply, error)


class KafkaRefusedError(ConnectionError):
    """Kafka could not be used: it does not answer, or it refused our credentials, our
    TLS, our protocol or (by ACL) what we tried; `refusal.message` says which, in one line."""

    def __init__(self, refusal: KafkaRefusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
