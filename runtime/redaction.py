"""The secrets a worker holds, and the one way text that might contain them leaves it.

A secret is anything a command producer must not learn from a result, an event or a
log line:

- each LM profile's API key, read from its environment variable, and the key's first
  and last 8 characters (providers and gateways echo such fragments on their own, for
  instance "Incorrect API key provided: sk-abc...wxyz");
- the NAME of that variable (it says how the worker is configured);
- each profile's ``api_base``: the URL, its host:port and its host (internal addresses);
- the database password in ``DATABASE_URL``, the API token (``DSPYOPS_API_TOKEN``) and
  the Kafka SASL and TLS key passwords.

``Redactor.redact`` replaces each of them, wherever it appears and in any letter case,
with a neutral marker: ``[redacted]``, or ``[profile 'default' endpoint]`` for a URL or
host:port (``[redacted host]`` for a bare host, which other services may share). It
also blanks credentials in common shapes it was never told about (``Bearer ...``,
``api_key=...``, ``password: ...``, ``https://user:password@...``).

Values shorter than ``MIN_SECRET_CHARS`` are not searched for: blanking every "pw" in
every log line would make the logs useless and protect nothing.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from dspyops.runtime.profiles import LMProfile, ProfileRegistry
from dspyops.settings import Settings

REDACTED = "[redacted]"
REDACTED_HOST = "[redacted host]"
MIN_SECRET_CHARS = 4
KEY_FRAGMENT_CHARS = 8

# Credentials in shapes worth blanking even when their value was never configured
# here. A value starting with "[" is left alone: it is a marker already.
_SHAPES = (
    re.compile(r"(\bbearer\s+)(?!\[)[\w.~+/=-]{8,}", re.IGNORECASE),
    re.compile(
        r"(\b(?:api[-_ ]?key|x-api-key|access[-_]?token|token|secret|password|passwd)"
        r"[\"']?\s*[:=]\s*[\"']?|\bapi key provided:\s*)(?!\[)[^\s\"',;&]{4,}",
        re.IGNORECASE,
    ),
    # The password of scheme://user:password@host.
    re.compile(r"(://[^/\s:@]+:)(?!\[)[^\s/@]+(?=@)"),
)


class Redactor:
    """Replaces every configured secret, and credential-shaped text, with a marker."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        """``secrets`` maps each secret value to the marker that replaces it."""
        kept = {s: m for s, m in (secrets or {}).items() if len(s) >= MIN_SECRET_CHARS}
        self._markers = {secret.casefold(): marker for secret, marker in kept.items()}
        # Longest first: a URL is replaced whole, not host by host.
        alternatives = sorted(kept, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)
            if alternatives
            else None
        )

    @classmethod
    def for_worker(
        cls,
        settings: Settings,
        profiles: ProfileRegistry,
        environ: Mapping[str, str] | None = None,
    ) -> Redactor:
        """Every secret a worker with these settings and LM profiles holds."""
        env = os.environ if environ is None else environ
        secrets = profile_secrets((profiles.get(n) for n in profiles.names()), env)
        for secret, marker in settings_secrets(settings).items():
            secrets.setdefault(secret, marker)
        return cls(secrets)

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(self._marker, text)
        for shape in _SHAPES:
            text = shape.sub(rf"\1{REDACTED}", text)
        return text

    def _marker(self, match: re.Match[str]) -> str:
        return self._markers.get(match.group(0).casefold(), REDACTED)


def key_secrets(key: str) -> dict[str, str]:
    """A key and its first and last ``KEY_FRAGMENT_CHARS`` characters."""
    key = key.strip()  # a key read from a file often ends in a newline
    return {part: REDACTED for part in (key, key[:KEY_FRAGMENT_CHARS], key[-KEY_FRAGMENT_CHARS:])}


def profile_secrets(profiles: Iterable[LMProfile], environ: Mapping[str, str]) -> dict[str, str]:
    """Keys, key variable names and endpoints of `profiles`, each mapped to its marker."""
    secrets: dict[str, str] = {}
    endpoints: dict[str, list[str]] = defaultdict(list)
    for profile in profiles:
        key_env = profile.api_key_env or _provider_key_env(profile)
        if key_env and environ.get(key_env):
            secrets.update(key_secrets(environ[key_env]))
        if profile.api_key_env:
            secrets[profile.api_key_env] = REDACTED
        if profile.api_base:
            for value in _endpoint_forms(profile.api_base):
                endpoints[value].append(profile.name)
            parts = urlsplit(profile.api_base)
            if parts.password:
                secrets.update({parts.password: REDACTED, unquote(parts.password): REDACTED})
            if parts.hostname:
                secrets.setdefault(parts.hostname, REDACTED_HOST)
    for value, names in endpoints.items():
        secrets.setdefault(value, _endpoint_marker(sorted(set(names))))
    return secrets


def settings_secrets(settings: Settings) -> dict[str, str]:
    """The database password, the API token and the Kafka passwords."""
    secrets: dict[str, str] = {}
    password = urlsplit(settings.effective_database_url).password
    if password:
        secrets.update({password: REDACTED, unquote(password): REDACTED})
    if settings.api_token:
        secrets.update(key_secrets(settings.api_token))
    kafka = settings.kafka_security
    for secret in (kafka.password, kafka.key_password):
        if secret is not None and secret.get_secret_value():
            secrets[secret.get_secret_value()] = REDACTED
    return secrets


def _provider_key_env(profile: LMProfile) -> str | None:
    """Without ``api_key_env`` the provider's client reads its own variable, e.g. OPENAI_API_KEY."""
    if profile.offline or "/" not in profile.model:
        return None
    return f"{profile.model.split('/', 1)[0].upper()}_API_KEY"


def _endpoint_forms(api_base: str) -> set[str]:
    """The URL as configured and without a trailing slash, and its host:port."""
    parts = urlsplit(api_base)
    forms = {api_base, api_base.rstrip("/")}
    # netloc without user:password@; read as text so a malformed port cannot raise.
    address = parts.netloc.rsplit("@", 1)[-1]
    if address and address.lower() != (parts.hostname or ""):
        forms.add(address)
    return forms


def _endpoint_marker(names: list[str]) -> str:
    if len(names) == 1:
        return f"[profile {names[0]!r} endpoint]"
    return f"[profiles {', '.join(map(repr, names))} endpoint]"
