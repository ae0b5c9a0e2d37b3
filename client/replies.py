"""A result envelope from the results topic, with its payload typed by the events/ models."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from dspyops.events.envelope import RESULT_TYPE_PREFIX, Envelope
from dspyops.events.results import (
    RESULT_TYPES,
    CommandRejected,
    DeploymentRefused,
    ErrorInfo,
    EvaluationFailed,
    ExecutionFailed,
    OptimizationFailed,
    Result,
)

R = TypeVar("R", bound=Result)

FAILURES: tuple[type[Result], ...] = (
    ExecutionFailed,
    OptimizationFailed,
    EvaluationFailed,
    DeploymentRefused,
)


@dataclass(frozen=True)
class Reply:
    envelope: Envelope
    # None for a result type this client does not know (a newer server): read `data`.
    result: Result | None
    command_type: str = ""

    @property
    def type(self) -> str:
        return self.envelope.short_type

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope.data or {}

    @property
    def terminal(self) -> bool:
        if self.result is not None:
            return type(self.result).terminal
        # The contract's only non-terminal results are progress reports.
        return not self.type.endswith("Progress")

    @property
    def rejected(self) -> bool:
        return isinstance(self.result, CommandRejected)

    @property
    def failed(self) -> bool:
        return self.rejected or isinstance(self.result, FAILURES)

    @property
    def error(self) -> ErrorInfo | None:
        return getattr(self.result, "error", None) if isinstance(self.result, FAILURES) else None

    @property
    def program_id(self) -> str | None:
        value = self.data.get("program_id")
        return value if isinstance(value, str) else None

    def expect(self, result_type: builtins.type[R]) -> R:
        """The typed payload, or TypeError if the result is of another type."""
        if not isinstance(self.result, result_type):
            raise TypeError(f"expected {result_type.__name__}, got {self.type}: {self.data}")
        return self.result


def parse_reply(envelope: Envelope, command_type: str = "") -> Reply:
    """A result envelope as a Reply; a payload that does not fit its model stays untyped."""
    name = envelope.type.removeprefix(RESULT_TYPE_PREFIX)
    model = RESULT_TYPES.get(name) if envelope.type.startswith(RESULT_TYPE_PREFIX) else None
    result: Result | None = None
    if model is not None:
        # Later server versions may add fields (the contract says: ignore them).
        known = {k: v for k, v in (envelope.data or {}).items() if k in model.model_fields}
        try:
            result = model.model_validate(known)
        except pydantic.ValidationError:
            result = None
    if not command_type and isinstance(result, CommandRejected):
        command_type = result.command_type
    return Reply(envelope=envelope, result=result, command_type=command_type)
