"""Redactor: every secret a worker holds, in any form it might be echoed, becomes a marker."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from dspyops.runtime.profiles import ProfileRegistry, load_profiles
from dspyops.runtime.redaction import REDACTED, REDACTED_HOST, Redactor
from dspyops.settings import Settings

KEY = "sk-live-0123456789abcdefghijklmnopqrstuvwxyzSECRET"
KEY_ENV = "ACME_GATEWAY_KEY"
PROFILES = {
    "default": {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://llm-gw.corp.internal:8443/v1/",
        "api_key_env": KEY_ENV,
    },
    # Same gateway, another model: the endpoint marker names both profiles.
    "cheap": {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://llm-gw.corp.internal:8443/v1/",
        "api_key_env": KEY_ENV,
    },
    "public": {"model": "anthropic/claude-3-5-haiku", "api_base": "https://api.example.com"},
}


def redactor(
    profiles: Mapping[str, object] | None = None,
    environ: dict[str, str] | None = None,
    **settings: object,
) -> Redactor:
    registry = ProfileRegistry(
        load_profiles(json.dumps(PROFILES if profiles is None else profiles))
    )
    env = {KEY_ENV: KEY} if environ is None else environ
    return Redactor.for_worker(
        Settings.model_validate({"DATABASE_URL": "postgresql://u@db/x", **settings}),
        registry,
        env,
    )


@pytest.mark.parametrize(
    "secret",
    [KEY, KEY[:8], KEY[-8:], KEY.upper(), KEY_ENV, KEY_ENV.lower()],
)
def test_the_key_its_fragments_and_its_variable_name_are_redacted(secret: str) -> None:
    text = f"Incorrect API key: {secret}! (see {secret})"
    redacted = redactor().redact(text)
    assert secret not in redacted
    assert redacted.count(REDACTED) == 2


def test_endpoints_become_a_marker_naming_their_profiles() -> None:
    r = redactor()
    text = (
        "POST http://llm-gw.corp.internal:8443/v1/chat/completions failed; "
        "connect to LLM-GW.corp.internal:8443 refused; resolved llm-gw.corp.internal"
    )
    redacted = r.redact(text)
    assert "llm-gw" not in redacted.lower()
    assert "8443" not in redacted
    assert redacted.count("[profiles 'cheap', 'default' endpoint]") == 2
    assert redacted.endswith(f"resolved {REDACTED_HOST}")
    assert r.redact("https://api.example.com/v1") == "[profile 'public' endpoint]/v1"


def test_settings_secrets_are_redacted() -> None:
    r = redactor(
        DATABASE_URL="postgresql://dspyops:p%40ss-w0rd@db.internal:5432/dspyops",
        api_token="api-token-abcdefghijklmnopqrstuvwxyz",
    )
    redacted = r.redact(
        "auth failed with p@ss-w0rd or p%40ss-w0rd; token api-token-abcdefghijklmnopqrstuvwxyz"
        " (api-toke...stuvwxyz)"
    )
    assert "ss-w0rd" not in redacted
    assert "api-token" not in redacted
    assert "stuvwxyz" not in redacted


def test_a_provider_key_read_from_its_default_variable_is_redacted() -> None:
    profiles = {"default": {"model": "openai/gpt-4o-mini"}}
    r = redactor(profiles, {"OPENAI_API_KEY": KEY})
    assert KEY[-8:] not in r.redact(f"bad key ...{KEY[-8:]}")


def test_credentials_in_common_shapes_are_redacted_even_if_unknown() -> None:
    r = Redactor()
    text = (
        "Authorization: Bearer abcdefgh12345678; api_key=zyxwvuts; "
        '{"x-api-key": "qwertyuiop"}; password: hunter22; '
        "dsn postgresql://admin:s3cr3t-pass@db:5432/x; Incorrect API key provided: sk-ab**wxyz."
    )
    redacted = r.redact(text)
    for secret in ("abcdefgh12345678", "zyxwvuts", "qwertyuiop", "hunter22", "s3cr3t", "sk-ab"):
        assert secret not in redacted, redacted
    assert "postgresql://admin:[redacted]@db:5432/x" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "usage {'prompt_tokens': 40, 'max_tokens': 256}",
        "kafka at 127.0.0.1:9092, http://kafka:9092/v1 and a basic setup",
        "Average Metric: 0.0 / 6 (0.0%)",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redactor().redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    r = redactor()
    once = r.redact(f"Bearer {KEY} at http://llm-gw.corp.internal:8443/v1/ ({KEY_ENV})")
    assert r.redact(once) == once


def test_values_too_short_to_search_for_are_skipped() -> None:
    r = Redactor({"pw": REDACTED, "abcd": REDACTED})
    assert r.redact("pw abcd") == f"pw {REDACTED}"


def test_a_missing_key_variable_still_redacts_its_name() -> None:
    assert KEY_ENV not in redactor(environ={}).redact(f"set {KEY_ENV}")


def test_a_key_read_with_its_newline_and_a_malformed_port_are_handled() -> None:
    profiles = {
        "p": {"model": "openai/x", "api_base": "http://h.internal:99999/v1", "api_key_env": "K"}
    }
    r = redactor(profiles, {"K": f"{KEY}\n"})
    assert r.redact(f"{KEY[:8]} at h.internal:99999") == f"{REDACTED} at [profile 'p' endpoint]"
