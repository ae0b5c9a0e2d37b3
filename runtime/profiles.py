"""Server-side LM profiles: the only way a command reaches a language model.

A command names a profile (``"default"``, ``"offline"``, ...); the URL, the key and the
retry policy live here, in the operator's configuration. That keeps secrets out of
events and stops a command from pointing the worker at an arbitrary URL (SSRF).

Configuration (``DSPYOPS_LM_PROFILES``) is a JSON object, or a path to a file holding
one, mapping a profile name to its fields::

    {"default": {"model": "openai/gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
                 "timeout_s": 20, "num_retries": 2}}

A profile named ``offline`` always exists. When no ``default`` is configured,
``default`` is an offline profile too, and a warning says so: its outputs are canned
and labelled ``[offline]``, never a model's answer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dspyops.runtime.offline import OFFLINE_MODEL, OfflineLM

logger = logging.getLogger(__name__)

OFFLINE_PROFILE = "offline"
DEFAULT_PROFILE = "default"

# An env var *name*; anything else (for instance a pasted key) is refused.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ProfileError(ValueError):
    """The profile configuration is unusable (bad JSON, bad field, missing key)."""


class UnknownProfile(LookupError):
    """A command named a profile the server does not define."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown LM profile {name!r}; known profiles: {', '.join(known)}")


class PublicProfile(BaseModel):
    """What results and events may say about the LM that ran: no URL, no key name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    offline: bool


class LMProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30, gt=0)
    num_retries: int = Field(default=2, ge=0, le=10)
    offline: bool = False
    # USD per million prompt / completion tokens, for a model LiteLLM's cost map does not
    # price (local, private) or another rate; both or neither (runtime.pricing).
    input_cost_per_million: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    output_cost_per_million: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> LMProfile:
        if not _PROFILE_NAME.match(self.name):
            raise ValueError(f"profile name {self.name!r} must match {_PROFILE_NAME.pattern}")
        if self.api_base is not None and not self.api_base.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http:// or https:// URL")
        if self.api_key_env is not None and not _ENV_NAME.match(self.api_key_env):
            raise ValueError("api_key_env must be the NAME of an environment variable, not a key")
        if self.offline:
            if self.model != OFFLINE_MODEL or self.api_base or self.api_key_env:
                raise ValueError(
                    f"an offline profile has model {OFFLINE_MODEL!r} and no api_base/api_key_env"
                )
        elif self.model == OFFLINE_MODEL:
            raise ValueError(f"model {OFFLINE_MODEL!r} is reserved for offline profiles")
        if (self.input_cost_per_million is None) != (self.output_cost_per_million is None):
            raise ValueError(
                "give both input_cost_per_million and output_cost_per_million, or neither"
            )
        return self

    def public_view(self) -> PublicProfile:
        return PublicProfile(model=self.model, offline=self.offline)


def offline_profile(name: str = OFFLINE_PROFILE) -> LMProfile:
    return LMProfile(name=name, model=OFFLINE_MODEL, offline=True, num_retries=0)


def _read_config(raw: str) -> Any:
    text = raw.strip()
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read LM profiles file {str(path)!r}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"LM profiles are not valid JSON: {exc}") from exc


def _parse_profile(name: str, body: Any) -> LMProfile:
    if not isinstance(body, dict):
        raise ProfileError(f"LM profile {name!r} must be a JSON object")
    if body.get("name", name) != name:
        raise ProfileError(f"LM profile {name!r} carries a different name {body['name']!r}")
    try:
        return LMProfile.model_validate({**body, "name": name})
    except ValidationError as exc:
        # Without the input values, and without the cause: a key pasted into the
        # configuration (``"api_key": "sk-..."``) must not reach a log or a terminal.
        problems = "; ".join(
            ": ".join(filter(None, (".".join(map(str, e["loc"])), e["msg"])))
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise ProfileError(f"LM profile {name!r} is invalid: {problems}") from None


def load_profiles(raw: str | None) -> dict[str, LMProfile]:
    """Parse profiles from JSON text or a file path; ``offline`` and ``default`` always exist."""
    config = _read_config(raw) if raw and raw.strip() else {}
    if not isinstance(config, dict):
        raise ProfileError("LM profiles must be a JSON object mapping a name to a profile")
    profiles = {name: _parse_profile(name, body) for name, body in config.items()}
    if not profiles.get(OFFLINE_PROFILE, offline_profile()).offline:
        raise ProfileError(f"profile {OFFLINE_PROFILE!r} is reserved for the offline LM")
    profiles.setdefault(OFFLINE_PROFILE, offline_profile())
    if DEFAULT_PROFILE not in profiles:
        logger.warning(
            "No %r LM profile configured: %r runs the OFFLINE LM, whose outputs are canned "
            "and labelled [offline]. Set DSPYOPS_LM_PROFILES to use a real model.",
            DEFAULT_PROFILE,
            DEFAULT_PROFILE,
        )
        profiles[DEFAULT_PROFILE] = offline_profile(DEFAULT_PROFILE)
    return profiles


def _build(profile: LMProfile) -> dspy.BaseLM:
    if profile.offline:
        return OfflineLM()
    extra: dict[str, Any] = {}
    if profile.api_base:
        extra["api_base"] = profile.api_base
    if profile.api_key_env:
        key = os.environ.get(profile.api_key_env)
        if not key:
            raise ProfileError(
                f"LM profile {profile.name!r} needs the environment variable "
                f"{profile.api_key_env!r}, which is not set"
            )
        extra["api_key"] = key
    # cache=False: an execution is a request for a fresh answer, and its usage must be
    # real; see runtime.executor.configure_dspy_for_workers for the global policy.
    return dspy.LM(
        profile.model,
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
        num_retries=profile.num_retries,
        timeout=profile.timeout_s,
        cache=False,
        **extra,
    )


class ProfileRegistry:
    """Profiles by name, and one LM object per profile, built on first use.

    One LM per profile (not per call) keeps its connection pool and lets DSPy's
    per-LM history stay bounded; LM objects are safe to share across tasks.
    """

    def __init__(self, profiles: Mapping[str, LMProfile]) -> None:
        self._profiles = dict(profiles)
        self._lms: dict[str, dspy.BaseLM] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, lm_profiles: str | None = None) -> ProfileRegistry:
        if lm_profiles is None:
            from dspyops.settings import get_settings

            lm_profiles = get_settings().lm_profiles
        return cls(load_profiles(lm_profiles))

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def get(self, name: str) -> LMProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise UnknownProfile(name, self.names()) from None

    def build_lm(self, name: str) -> dspy.BaseLM:
        profile = self.get(name)
        with self._lock:
            lm = self._lms.get(name)
            if lm is None:
                lm = self._lms[name] = _build(profile)
            return lm
