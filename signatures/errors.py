"""Errors raised by the signature parser and by input/output validation.

Both carry machine-readable details in the `{loc, msg, type}` shape that pydantic uses,
so a `CommandRejected` result can forward them without translation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class SignatureIssue(BaseModel):
    """One problem found in a signature text.

    `column` is 1-based over the whole text (a newline counts as one character);
    0 means the issue is not tied to a position (e.g. a description for an unknown field).
    """

    model_config = ConfigDict(frozen=True)

    column: int
    message: str
    code: str

    def __str__(self) -> str:
        if self.column <= 0:
            return self.message
        return f"column {self.column}: {self.message}"


class SignatureError(ValueError):
    """The signature text (or what is attached to it) is not acceptable."""

    def __init__(self, issues: list[SignatureIssue]) -> None:
        if not issues:
            raise ValueError("SignatureError needs at least one issue")
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[type[SignatureError], tuple[list[SignatureIssue]]]:
        # Exceptions pickle as cls(*args) and args is the message; keep the issues.
        return (type(self), (self.issues,))

    @classmethod
    def single(cls, column: int, message: str, code: str) -> SignatureError:
        return cls([SignatureIssue(column=column, message=message, code=code)])

    def errors(self) -> list[dict[str, Any]]:
        return [
            {"loc": ["signature"], "msg": str(issue), "type": issue.code} for issue in self.issues
        ]


class ValidationFailed(ValueError):
    """Inputs or outputs do not match the compiled signature.

    `errors` never includes the offending values: they may be large or confidential
    and end up in events and logs.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(_describe(error) for error in errors) or "validation failed")

    def __reduce__(self) -> tuple[type[ValidationFailed], tuple[list[dict[str, Any]]]]:
        return (type(self), (self.errors,))


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    return f"{loc}: {error['msg']}" if loc else str(error["msg"])
