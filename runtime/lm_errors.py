"""What dspyops says about a failed LM call: an error code, and a message it builds itself.

An exception's text is never passed on as it is. Providers and gateways echo what they
received (the API key, their own internal address) and client libraries add remedies
that name environment variables; an error message travels to the command producer,
into the event store, onto the events topic and into read models. So ``LMErrors``
builds the message from facts (profile, HTTP status, what kind of failure, retryable
or not) and appends the upstream text only after the worker's ``Redactor``::

    LM call failed on profile 'default': HTTP 401, authentication failed, not
    retryable; upstream said: Incorrect API key provided: [redacted]. ...

Error codes (``classify``):

===========================  =====================================================
``lm_timeout``               the execution exceeded its limit, or the provider
                             request timed out (after DSPy's retries)
``lm_rate_limited``          the provider answered 429 on every attempt
``context_window_exceeded``  the prompt does not fit the model's context window
``lm_error``                 any other LM failure: auth, bad request, server error,
                             transport, misconfiguration (of the profile, too)
``output_parse_error``       the LM answered, but not in a shape the adapter could
                             parse into the signature's outputs (AdapterParseError)
``internal_error``           anything else; a bug on our side, never the LM's fault
===========================  =====================================================
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from dspy import lm15
from dspy.utils.exceptions import (
    AdapterParseError,
    ContextWindowExceededError,
    LMAuthError,
    LMBillingError,
    LMConfigurationError,
    LMError,
    LMInvalidRequestError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
    is_retryable_lm_error,
)

from dspyops.runtime.profiles import ProfileError
from dspyops.runtime.redaction import Redactor

LM_TIMEOUT = "lm_timeout"
LM_RATE_LIMITED = "lm_rate_limited"
LM_ERROR = "lm_error"
CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
OUTPUT_PARSE_ERROR = "output_parse_error"
INTERNAL_ERROR = "internal_error"
# A judge program (runtime.judge) could not score a prediction: its call failed, or it
# answered no score in its declared range.
JUDGE_FAILED = "judge_failed"


class JudgeFailed(Exception):
    """A judge's call that gave no usable score; its execution records why."""


# Upstream text kept after redaction; a whole message stays well under 2,000 characters.
MAX_UPSTREAM_CHARS = 600

# Exceptions that reach us without DSPy's translation (a legacy LM, or LiteLLM called
# directly) are recognised by class name, so runtime/ needs no LiteLLM import.
_FOREIGN_CODES = {
    "Timeout": LM_TIMEOUT,
    "APITimeoutError": LM_TIMEOUT,
    "RateLimitError": LM_RATE_LIMITED,
    "ContextWindowExceededError": CONTEXT_WINDOW_EXCEEDED,
}
_FOREIGN_MODULES = ("litellm", "openai", "httpx", "httpcore")
# lm15's transport raises these for a client timeout; DSPy wraps them as LMTransportError.
_TIMEOUT_NAMES = frozenset({"ReadTimeout", "ConnectTimeout", "WriteTimeout", "Timeout"})

# What kind of failure, most specific first; DSPy's class and lm15's, which DSPy wraps.
_KINDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((ContextWindowExceededError, lm15.ContextLengthError), "prompt exceeds the context window"),
    ((LMAuthError, lm15.AuthError), "authentication failed"),
    ((LMBillingError, lm15.BillingError), "billing or quota refused"),
    ((LMRateLimitError, lm15.RateLimitError), "rate limited"),
    ((LMTimeoutError, lm15.TimeoutError, TimeoutError), "timed out"),
    ((LMInvalidRequestError, lm15.InvalidRequestError), "request refused"),
    ((LMServerError, lm15.ServerError), "server error"),
    ((LMConfigurationError, lm15.ConfigurationError), "LM client misconfigured"),
    ((ProfileError,), "profile not usable on this worker"),
)
_RETRYABLE_LM15 = (lm15.RateLimitError, lm15.TimeoutError, lm15.ServerError, lm15.TransportError)
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def classify(exc: BaseException) -> str:
    """The error code for an exception raised while running a module."""
    if isinstance(exc, AdapterParseError):
        return OUTPUT_PARSE_ERROR
    if isinstance(exc, JudgeFailed):
        return JUDGE_FAILED
    if isinstance(exc, ContextWindowExceededError | lm15.ContextLengthError):
        return CONTEXT_WINDOW_EXCEEDED
    if isinstance(exc, LMTimeoutError | lm15.TimeoutError | TimeoutError):
        return LM_TIMEOUT
    if isinstance(exc, LMRateLimitError | lm15.RateLimitError):
        return LM_RATE_LIMITED
    if isinstance(exc, LMError | lm15.LM15Error):
        return LM_TIMEOUT if _timed_out(exc) else LM_ERROR
    if isinstance(exc, ProfileError):
        return LM_ERROR
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in _FOREIGN_MODULES:
            return _FOREIGN_CODES.get(cls.__name__, LM_ERROR)
    return INTERNAL_ERROR


@dataclass(frozen=True)
class LMErrors:
    """Codes and messages for failures of LM calls on one profile; the only way they are told."""

    profile: str
    redactor: Redactor

    def describe(self, exc: BaseException) -> tuple[str, str]:
        """(code, message) for `exc`; the message holds upstream text only once redacted."""
        code = classify(exc)
        if code == OUTPUT_PARSE_ERROR:
            outputs = ", ".join(getattr(getattr(exc, "signature", None), "output_fields", {}))
            head = f"the LM's reply on profile {self.profile!r} did not parse into its outputs"
            return code, self._joined(f"{head} ({outputs})" if outputs else head, exc)
        if code == INTERNAL_ERROR:
            return code, self._joined(f"internal error ({type(exc).__name__})", exc, ": ")
        facts = ", ".join(f for f in (_status(exc), _kind(exc), _retryable(exc)) if f)
        head = f"LM call failed on profile {self.profile!r}" + (f": {facts}" if facts else "")
        return code, self._joined(head, exc)

    def deadline_exceeded(self, limit_s: float) -> tuple[str, str]:
        message = (
            f"LM call on profile {self.profile!r} exceeded the execution limit of "
            f"{limit_s:g} s, retryable"
        )
        return LM_TIMEOUT, message

    def _joined(self, head: str, exc: BaseException, joiner: str = "; upstream said: ") -> str:
        # Cut short only after redaction (a cut could leave a key's fragment unmatched);
        # the first, generous cut bounds the work, and the second drops where it fell.
        detail = self.redactor.redact(_first_paragraph(exc)[: 10 * MAX_UPSTREAM_CHARS])
        if len(detail) > MAX_UPSTREAM_CHARS:
            detail = detail[:MAX_UPSTREAM_CHARS] + "..."
        return f"{head}{joiner}{detail}" if detail else head


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _timed_out(exc: BaseException) -> bool:
    """A client-side read/connect timeout, which DSPy reports as a transport error."""
    return any(
        isinstance(e, TimeoutError) or type(e).__name__ in _TIMEOUT_NAMES for e in _chain(exc)
    )


def _http_status(exc: BaseException) -> int | None:
    for e in _chain(exc):
        for name in ("status", "status_code"):
            value = getattr(e, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _status(exc: BaseException) -> str | None:
    status = _http_status(exc)
    return f"HTTP {status}" if status is not None else None


def _kind(exc: BaseException) -> str | None:
    for classes, phrase in _KINDS:
        if isinstance(exc, classes):
            return phrase
    causes = list(_chain(exc))
    if _timed_out(exc):
        return "timed out"
    if any(isinstance(e, socket.gaierror) for e in causes):
        return "host name did not resolve"
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return "connection refused"
    if isinstance(exc, LMTransportError | lm15.TransportError | ConnectionError | OSError):
        return "endpoint unreachable"
    return None


def _retryable(exc: BaseException) -> str | None:
    verdict: bool | None
    if isinstance(exc, LMError):
        verdict = is_retryable_lm_error(exc)
    elif isinstance(exc, lm15.LM15Error):
        verdict = isinstance(exc, _RETRYABLE_LM15)
    elif isinstance(exc, ProfileError):
        verdict = False
    elif isinstance(exc, TimeoutError | ConnectionError):
        verdict = True
    elif (status := _http_status(exc)) is not None:
        verdict = status in _RETRYABLE_STATUS or status >= 500
    else:
        verdict = None
    if verdict is None:
        return None
    return "retryable" if verdict else "not retryable"


def _first_paragraph(exc: BaseException) -> str:
    """The upstream's own words: client libraries append remedies after a blank line."""
    try:
        text = str(exc)
    except Exception:
        return ""
    return re.sub(r"\s+", " ", text.split("\n\n", 1)[0]).strip()
