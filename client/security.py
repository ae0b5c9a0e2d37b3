"""How dspyops connects to Kafka: TLS, SASL, and the one translation into aiokafka's keywords.

Every Kafka client dspyops makes (the worker's faust app, the outbox relay, the Python
client, the CLI, the API's health check, the benches) takes its security from one
`KafkaSecurity` and its `aiokafka_kwargs()`: there is no second place that knows what
SASL_SSL means. Passwords are `SecretStr`, so neither a repr nor a log line shows them.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_TLS = {"SSL", "SASL_SSL"}
_SASL = {"SASL_PLAINTEXT", "SASL_SSL"}


class KafkaSecurity(BaseModel):
    """The security of one Kafka connection; the default is a plaintext, unauthenticated one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    username: str | None = None
    password: SecretStr | None = None
    # PEM files: the CA that signed the brokers' certificates (unset: the system's CAs),
    # and a client certificate and key for brokers that ask for one (mutual TLS).
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.uses_sasl and (not self.username or self.password is None):
            raise ValueError(f"{self.protocol} needs a SASL username and password")
        if not self.uses_sasl and (self.username or self.password is not None):
            raise ValueError(
                f"a SASL username or password needs SASL_SSL or SASL_PLAINTEXT, not {self.protocol}"
            )
        files = (self.cafile, self.certfile, self.keyfile)
        if not self.uses_tls and any(f is not None for f in files):
            raise ValueError(f"TLS files need SSL or SASL_SSL, not {self.protocol}")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("a TLS key file needs its certificate file")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.protocol in _TLS

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in _SASL

    @property
    def principal(self) -> str | None:
        """The Kafka principal this connection authenticates as (``User:<name>``), if SASL."""
        return f"User:{self.username}" if self.uses_sasl else None

    def describe(self) -> str:
        """How we connect, for messages: never the password."""
        if self.uses_sasl:
            return f"{self.protocol}, {self.sasl_mechanism} as {self.username!r}"
        return self.protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (hostname checked, CA from `cafile` or the system), or None."""
        if not self.uses_tls:
            return None
        return create_ssl_context(
            cafile=self.cafile,
            certfile=self.certfile,
            keyfile=self.keyfile,
            password=self.key_password.get_secret_value() if self.key_password else None,
        )

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin, client)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.uses_sasl:
            assert self.password is not None  # checked by _consistent
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password.get_secret_value(),
            )
        return kwargs


PLAINTEXT = KafkaSecurity()
