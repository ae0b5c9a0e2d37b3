"""LMErrors: a code and a message dspyops builds; upstream text only once redacted."""

from __future__ import annotations

import socket

import dspy
import pytest
from dspy import lm15
from dspy.utils.exceptions import LMAuthError, LMServerError, LMTransportError

from dspyops.runtime.executor import execute_program
from dspyops.runtime.lm_errors import MAX_UPSTREAM_CHARS, LMErrors
from dspyops.runtime.profiles import ProfileError, ProfileRegistry, load_profiles
from dspyops.runtime.redaction import REDACTED, Redactor, key_secrets
from tests.support.scripted_lm import ScriptedLM

KEY = "sk-proj-Zq4xW8rT2vN6mK0pL3sD7fG1hJ5bC9aE"
KEY_ENV = "ACME_LM_KEY"
URL = "http://10.1.2.3:8000/v1"
SECRETS = {**key_secrets(KEY), KEY_ENV: REDACTED, URL: "[profile 'p' endpoint]"}
SECRETS["10.1.2.3:8000"] = "[profile 'p' endpoint]"
ERRORS = LMErrors("p", Redactor(SECRETS))
ECHO = f"Incorrect API key provided: {KEY}. Set {KEY_ENV}; gateway {URL} (10.1.2.3:8000)"


def assert_no_secret(message: str) -> None:
    for secret in (KEY, KEY[:8], KEY[-8:], KEY_ENV, "10.1.2.3"):
        assert secret not in message, message


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "code", "facts"),
    [
        (
            lm15.AuthError(ECHO, status=401),
            "lm_error",
            "HTTP 401, authentication failed, not retryable",
        ),
        (
            LMAuthError(ECHO, status=403),
            "lm_error",
            "HTTP 403, authentication failed, not retryable",
        ),
        (
            lm15.RateLimitError(ECHO, status=429),
            "lm_rate_limited",
            "HTTP 429, rate limited, retryable",
        ),
        (LMServerError(ECHO, status=500), "lm_error", "HTTP 500, server error, retryable"),
        (lm15.BillingError(ECHO, status=402), "lm_error", "HTTP 402, billing or quota refused"),
        (
            lm15.ContextLengthError(ECHO, status=400),
            "context_window_exceeded",
            "HTTP 400, prompt exceeds the context window, not retryable",
        ),
        (
            chained(LMTransportError(ECHO), ConnectionRefusedError(111, ECHO)),
            "lm_error",
            "connection refused, retryable",
        ),
        (
            chained(LMTransportError(ECHO), socket.gaierror(-2, "Name or service not known")),
            "lm_error",
            "host name did not resolve, retryable",
        ),
        (
            chained(LMTransportError(ECHO), TimeoutError()),
            "lm_timeout",
            "timed out, retryable",
        ),
    ],
)
def test_each_failure_is_told_with_status_kind_and_whether_to_retry(
    exc: BaseException, code: str, facts: str
) -> None:
    told_code, message = ERRORS.describe(exc)

    assert told_code == code
    assert message.startswith(f"LM call failed on profile 'p': {facts}"), message
    assert_no_secret(message)


def test_the_upstream_text_follows_redacted() -> None:
    _, message = ERRORS.describe(lm15.AuthError(ECHO, status=401))
    assert message.endswith(
        "upstream said: Incorrect API key provided: [redacted]. Set [redacted]; "
        "gateway [profile 'p' endpoint] ([profile 'p' endpoint]) (HTTP 401)"
    )


def test_client_remedies_after_the_upstream_text_are_dropped() -> None:
    exc = LMAuthError(f"{ECHO}\n\n  To fix:\n    - set OPENAI_API_KEY=...", status=401)
    _, message = ERRORS.describe(exc)
    assert "To fix" not in message
    assert "OPENAI_API_KEY" not in message


def test_long_upstream_text_is_cut_after_redaction() -> None:
    # Cut first, a key straddling the limit would leave a fragment no pattern matches.
    padding = "x " * ((MAX_UPSTREAM_CHARS - 10) // 2)
    _, message = ERRORS.describe(LMServerError(f"{padding}{KEY} and more", status=500))
    assert_no_secret(message)
    assert message.endswith("...")
    assert len(message) < MAX_UPSTREAM_CHARS + 200


def test_a_profile_without_its_key_is_an_lm_error_that_hides_the_variable() -> None:
    registry = ProfileRegistry(
        load_profiles(f'{{"p": {{"model": "openai/x", "api_key_env": "{KEY_ENV}"}}}}')
    )
    with pytest.raises(ProfileError) as missing:
        registry.build_lm("p")

    code, message = ERRORS.describe(missing.value)

    assert code == "lm_error"
    assert "profile not usable on this worker, not retryable" in message
    assert_no_secret(message)


def test_an_internal_error_keeps_its_redacted_detail() -> None:
    code, message = ERRORS.describe(KeyError(f"no {KEY_ENV}"))
    assert code == "internal_error"
    assert message == "internal error (KeyError): 'no [redacted]'"


def test_the_execution_deadline_is_told_without_the_exception() -> None:
    assert ERRORS.deadline_exceeded(0.25) == (
        "lm_timeout",
        "LM call on profile 'p' exceeded the execution limit of 0.25 s, retryable",
    )


async def test_execute_program_reports_the_told_failure() -> None:
    signature = dspy.make_signature(
        {"question": (str, dspy.InputField()), "answer": (str, dspy.OutputField())}
    )
    lm = ScriptedLM("unused", error=lm15.AuthError(ECHO, status=401))

    outcome = await execute_program(
        dspy.Predict(signature), {"question": "q"}, lm, timeout_s=5, errors=ERRORS
    )

    assert outcome.error_code == "lm_error"
    assert (outcome.error_message or "").startswith("LM call failed on profile 'p': HTTP 401")
    assert_no_secret(outcome.error_message or "")


def test_a_failure_without_known_facts_is_still_told_plainly() -> None:
    code, message = ERRORS.describe(type("APIError", (Exception,), {"__module__": "litellm"})(KEY))
    assert code == "lm_error"
    assert message == "LM call failed on profile 'p'; upstream said: [redacted]"
