"""LM profiles: server-side only, offline always present, no secrets in public views."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dspy
import pytest

from dspyops.runtime.offline import OfflineLM
from dspyops.runtime.profiles import (
    LMProfile,
    ProfileError,
    ProfileRegistry,
    UnknownProfile,
    load_profiles,
)
from dspyops.settings import get_settings

REMOTE = {
    "default": {
        "model": "openai/gpt-4o-mini",
        "api_base": "https://llm.internal.example/v1",
        "api_key_env": "DSPYOPS_TEST_OPENAI_KEY",
        "temperature": 0.2,
        "max_tokens": 256,
        "timeout_s": 12.5,
        "num_retries": 1,
    },
    "fast": {"model": "openai/gpt-4o-mini"},
}


def test_without_configuration_default_is_offline_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dspyops.runtime.profiles"):
        profiles = load_profiles(None)

    assert set(profiles) == {"offline", "default"}
    assert profiles["offline"].offline
    assert profiles["default"].offline
    assert profiles["default"].model == "offline"
    assert "OFFLINE" in caplog.text


def test_json_text_is_parsed_and_offline_added() -> None:
    profiles = load_profiles(json.dumps(REMOTE))

    assert set(profiles) == {"default", "fast", "offline"}
    default = profiles["default"]
    assert default.name == "default"
    assert not default.offline
    assert default.timeout_s == 12.5
    assert default.num_retries == 1
    assert profiles["fast"].timeout_s == 30
    assert profiles["fast"].num_retries == 2


def test_a_file_path_is_read(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(REMOTE))

    assert load_profiles(str(path))["default"].model == "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("/nonexistent/profiles.json", "cannot read"),
        ('["a"]', "cannot read"),
        ('{"x": 1}', "must be a JSON object"),
        ('{"x": {"model": "openai/a", "api_key": "sk-123"}}', "Extra inputs are not permitted"),
        ('{"x": {"model": "openai/a", "api_key_env": "sk-live abc"}}', "NAME of an environment"),
        ('{"x": {"model": "openai/a", "timeout_s": 0}}', "greater than 0"),
        ('{"x": {"model": "openai/a", "name": "y"}}', "different name"),
        ('{"x": {"model": "offline"}}', "reserved for offline"),
        ('{"offline": {"model": "openai/a"}}', "reserved"),
        ('{"x": {"model": "offline", "offline": true, "api_base": "http://h"}}', "no api_base"),
        ('{"bad name!": {"model": "openai/a"}}', "profile name"),
        ('{"x": {"model": "openai/a", "api_base": "file:///etc"}}', "http:// or https://"),
    ],
)
def test_bad_configuration_is_refused(raw: str, expected: str) -> None:
    with pytest.raises(ProfileError, match=expected):
        load_profiles(raw)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai/a", "api_key": "sk-pasted-0123456789"},
        {"model": "openai/a", "api_key_env": "sk-pasted-0123456789"},
    ],
)
def test_a_refused_profile_does_not_repeat_a_pasted_key(body: dict[str, str]) -> None:
    with pytest.raises(ProfileError) as refused:
        load_profiles(json.dumps({"x": body}))
    assert "sk-pasted" not in str(refused.value)
    assert "6789" not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


def test_an_offline_profile_may_be_declared() -> None:
    profiles = load_profiles('{"default": {"model": "offline", "offline": true}}')
    assert profiles["default"].offline


def test_unknown_profile_names_the_known_ones() -> None:
    registry = ProfileRegistry(load_profiles(json.dumps(REMOTE)))

    with pytest.raises(UnknownProfile, match=r"'gpt-5'.*default, fast, offline") as caught:
        registry.get("gpt-5")
    assert isinstance(caught.value, LookupError)
    with pytest.raises(UnknownProfile):
        registry.build_lm("http://attacker.example/v1")


def test_public_view_has_no_url_and_no_key_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPYOPS_TEST_OPENAI_KEY", "sk-secret-value")
    profile = load_profiles(json.dumps(REMOTE))["default"]

    public = profile.public_view().model_dump()

    assert public == {"model": "openai/gpt-4o-mini", "offline": False}
    text = json.dumps(public)
    for secret in ("llm.internal.example", "DSPYOPS_TEST_OPENAI_KEY", "sk-secret-value"):
        assert secret not in text
    assert load_profiles(None)["default"].public_view().offline is True


def test_build_lm_caches_one_lm_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPYOPS_TEST_OPENAI_KEY", "sk-secret-value")
    registry = ProfileRegistry(load_profiles(json.dumps(REMOTE)))

    lm = registry.build_lm("default")

    assert registry.build_lm("default") is lm
    assert registry.build_lm("fast") is not lm
    assert isinstance(lm, dspy.LM)
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.num_retries == 1
    assert lm.cache is False
    assert lm.kwargs["api_base"] == "https://llm.internal.example/v1"
    assert lm.kwargs["api_key"] == "sk-secret-value"
    assert lm.kwargs["timeout"] == 12.5
    assert lm.kwargs["temperature"] == 0.2
    assert lm.kwargs["max_tokens"] == 256
    assert "sk-secret-value" not in json.dumps(lm.dump_state(), default=str)


def test_offline_profiles_build_the_offline_lm() -> None:
    registry = ProfileRegistry(load_profiles(None))

    lm = registry.build_lm("offline")

    assert isinstance(lm, OfflineLM)
    assert lm.model == "offline"
    assert isinstance(registry.build_lm("default"), OfflineLM)


def test_a_missing_key_variable_is_named_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSPYOPS_TEST_OPENAI_KEY", raising=False)
    registry = ProfileRegistry(load_profiles(json.dumps(REMOTE)))

    with pytest.raises(ProfileError, match="DSPYOPS_TEST_OPENAI_KEY"):
        registry.build_lm("default")


def test_registry_reads_dspyops_lm_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPYOPS_LM_PROFILES", json.dumps({"fast": {"model": "openai/x"}}))
    get_settings.cache_clear()
    try:
        registry = ProfileRegistry.from_settings()
    finally:
        get_settings.cache_clear()

    assert registry.names() == ["default", "fast", "offline"]
    assert registry.get("fast").model == "openai/x"


def test_profiles_are_immutable() -> None:
    profile = LMProfile(name="p", model="openai/x")
    with pytest.raises(ValueError, match="frozen"):
        profile.model = "openai/y"
