"""Why Kafka would not talk to us, in one line a person can act on.

aiokafka reports a failed bootstrap as "Unable to bootstrap from [...]" and logs the
reason (a wrong password, an untrusted certificate, a TLS listener spoken to in plain
text) on a line of its own. `connection_refusal` opens one connection the way our
clients do and turns what happens into a `KafkaRefusal`; `access_refusal` does the same
for an ACL that forbids what a principal tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from dspyops.client.security import KafkaSecurity

SECURITY_HINT = (
    "check DSPYOPS_KAFKA_SECURITY_PROTOCOL, DSPYOPS_KAFKA_SASL_* and DSPYOPS_KAFKA_SSL_* "
    "(README: Connecting to a secured Kafka)"
)

AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


@dataclass(frozen=True)
class KafkaRefusal:
    """Kafka could not be used. `answered`: a broker was there and refused us (credentials,
    TLS, protocol, ACL), so starting a broker or waiting will not help."""

    message: str
    answered: bool

    @property
    def hint(self) -> str | None:
        return SECURITY_HINT if self.answered else None


async def connection_refusal(
    bootstrap_servers: str, security: KafkaSecurity, *, timeout_s: float = 5.0
) -> KafkaRefusal | None:
    """None when the first bootstrap server accepts a connection as `security` says
    (TLS handshake and SASL authentication included), else why not."""
    where = bootstrap_servers.split(",")[0].strip()
    host, _, port = where.rpartition(":")
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host or "127.0.0.1",
                int(port),
                request_timeout_ms=int(timeout_s * 1000),
                **security.aiokafka_kwargs(),
            ),
            timeout_s,
        )
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        return describe_connection_error(exc, where, security)
    conn.close()
    return None


def describe_connection_error(
    exc: BaseException, where: str, security: KafkaSecurity
) -> KafkaRefusal:
    """One line for what connecting to `where` as `security` raised."""
    how = security.describe()
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaRefusal(
            f"Kafka at {where} refused the credentials ({how}): wrong user name or password",
            answered=True,
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return KafkaRefusal(
            f"Kafka at {where} does not offer SASL mechanism {security.sasl_mechanism} ({how})",
            answered=True,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KafkaRefusal(
            f"the TLS certificate of Kafka at {where} is not trusted: {exc.verify_message} "
            "(set DSPYOPS_KAFKA_SSL_CAFILE to the CA that signed it)",
            answered=True,
        )
    if isinstance(exc, ssl.SSLError):
        return KafkaRefusal(
            f"TLS with Kafka at {where} failed ({exc.reason or exc}): is that listener TLS?",
            answered=True,
        )
    if isinstance(exc, ConnectionRefusedError | TimeoutError) or (
        isinstance(exc, OSError) and not isinstance(exc, ConnectionResetError)
    ):
        return KafkaRefusal(f"Kafka at {where} does not answer", answered=False)
    if isinstance(exc, KafkaConnectionError | ConnectionResetError):
        # The broker hung up mid-handshake: it speaks another protocol on that port.
        return KafkaRefusal(
            f"Kafka at {where} closed the connection during a {security.protocol} handshake: "
            "that listener expects another security protocol",
            answered=True,
        )
    return KafkaRefusal(f"Kafka at {where} refused the connection ({how}): {exc}", answered=True)


def access_refusal(
    exc: KafkaError, security: KafkaSecurity, operation: str, resource: str
) -> KafkaRefusal:
    """One line for an ACL refusal: who may not do what to which topic or group."""
    who = security.principal or "the anonymous principal"
    return KafkaRefusal(
        f"Kafka refused {who} to {operation} {resource} ({type(exc).__name__}): "
        "an ACL must allow it",
        answered=True,
    )


async def first_refusal(
    bootstrap_servers: str, security: KafkaSecurity, exc: BaseException
) -> KafkaRefusal:
    """After a client failed to start with `exc`: the reason a fresh connection gives,
    or `exc` itself when a fresh connection succeeds (a transient failure)."""
    with contextlib.suppress(Exception):
        refusal = await connection_refusal(bootstrap_servers, security)
        if refusal is not None:
            return refusal
    return KafkaRefusal(
        f"Kafka at {bootstrap_servers} does not answer ({type(exc).__name__})", answered=False
    )
