"""Domain errors: what a command got wrong, as machine-readable `{loc, msg, type}` items.

A `DomainError` never leaves a half-applied change: guards raise it before any event is
recorded, and the application turns it into a `CommandRejected` outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ErrorDict = dict[str, Any]
# A command with more problems than this reports the first ones only.
MAX_REPORTED_ERRORS = 50


def error(loc: list[str | int], msg: str, type_: str) -> ErrorDict:
    """One machine-readable problem, as InvalidInput and CommandRejected carry them."""
    return {"loc": loc, "msg": msg, "type": type_}


class DomainError(Exception):
    """A command that cannot be applied; `.errors` lists every reason."""

    error_type = "domain_error"

    def __init__(
        self,
        msg: str = "",
        *,
        loc: Sequence[str | int] = (),
        errors: list[ErrorDict] | None = None,
    ) -> None:
        if errors is None:
            errors = [{"loc": list(loc), "msg": msg, "type": self.error_type}]
        if not errors:
            raise ValueError("a DomainError needs at least one error")
        self.errors: list[ErrorDict] = errors
        super().__init__(msg or "; ".join(str(error["msg"]) for error in errors))


class NotFound(DomainError):
    error_type = "not_found"


class IllegalTransition(DomainError):
    error_type = "illegal_transition"


class InvalidInput(DomainError):
    error_type = "invalid_input"


class AlreadyExists(DomainError):
    error_type = "already_exists"


class Unrecorded(DomainError):
    """A refusal that is answered and never stored: the command was not applied, and its
    id keeps no outcome of this refusal."""


class IdReused(Unrecorded):
    """A command id already used by a command of another type or payload.

    Answered, never stored: the id's stored outcome belongs to the first command.
    """

    error_type = "id_reused"


class RateLimited(Unrecorded):
    """The command's producer sent more than the workers' rate limit allows.

    Answered, never stored: a refusal that cost a write would let a runaway producer load
    the store it is being kept from; the same command (same id) may be sent again after
    the `retry_after_s` its error's `ctx` gives.
    """

    error_type = "rate_limited"


def prefixed(errors: list[ErrorDict], *prefix: str | int) -> list[ErrorDict]:
    """The same errors with `prefix` put in front of each `loc`."""
    return [{**error, "loc": [*prefix, *error.get("loc", [])]} for error in errors]
