"""Kafka security settings: one group, one translation into aiokafka's and faust's terms."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr, ValidationError

from dspyops.client.refusals import access_refusal, describe_connection_error
from dspyops.client.security import KafkaSecurity
from dspyops.consumers.faust_app import broker_credentials
from dspyops.runtime.redaction import settings_secrets
from dspyops.settings import Settings

HERE = "127.0.0.1:9096"


def _scram(**extra: object) -> KafkaSecurity:
    return KafkaSecurity.model_validate(
        {
            "protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": "worker",
            "password": "s3cret-pass",
            **extra,
        }
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert Settings().kafka_security.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(KafkaSecurity()) is None


def test_sasl_ssl_gives_aiokafka_a_checking_tls_context_and_the_credentials() -> None:
    kwargs = _scram().aiokafka_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "s3cret-pass",
    }


def test_sasl_plaintext_has_no_tls_context() -> None:
    kwargs = _scram(protocol="SASL_PLAINTEXT").aiokafka_kwargs()
    assert "ssl_context" not in kwargs
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"


def test_faust_gets_the_same_security() -> None:
    sasl = broker_credentials(_scram())
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.protocol.value, sasl.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (sasl.username, sasl.password) == ("worker", "s3cret-pass")
    plain_sasl = broker_credentials(_scram(protocol="SASL_PLAINTEXT"))
    assert isinstance(plain_sasl, faust.SASLCredentials)
    assert plain_sasl.protocol.value == "SASL_PLAINTEXT"
    tls = broker_credentials(KafkaSecurity(protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials)
    assert isinstance(tls.context, ssl.SSLContext)


def test_the_password_shows_in_no_repr_and_the_principal_is_the_user() -> None:
    security = _scram()
    assert "s3cret-pass" not in repr(security)
    assert "s3cret-pass" not in security.describe()
    assert security.principal == "User:worker"
    assert KafkaSecurity().principal is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"protocol": "SASL_SSL"}, "SASL_SSL needs a SASL username and password"),
        ({"username": "u", "password": "p"}, "needs SASL_SSL or SASL_PLAINTEXT"),
        ({"cafile": "ca.pem"}, "TLS files need SSL or SASL_SSL, not PLAINTEXT"),
        ({"protocol": "SSL", "keyfile": "k.pem"}, "a TLS key file needs its certificate file"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSecurity.model_validate(values)


def test_settings_read_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="producer",
        kafka_sasl_password_file=secret,
    )
    security = settings.kafka_security
    assert security.password is not None
    assert security.password.get_secret_value() == "from-a-file"
    assert security.sasl_mechanism == "SCRAM-SHA-256"
    # The worker's log redaction blanks it too.
    assert "from-a-file" in settings_secrets(settings)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSPYOPS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("DSPYOPS_KAFKA_SASL_USERNAME", "producer")
    monkeypatch.setenv("DSPYOPS_KAFKA_SASL_PASSWORD", "from-env")
    kwargs = Settings().kafka_security.aiokafka_kwargs()
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "producer",
        "from-env",
    )


def test_a_password_and_a_password_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("x")
    with pytest.raises(ValidationError, match="not both"):
        Settings(kafka_sasl_password=SecretStr("y"), kafka_sasl_password_file=tmp_path / "p")


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    named = f"DSPYOPS_KAFKA_SASL_PASSWORD_FILE: cannot read {missing}"
    with pytest.raises(ValidationError, match=named):
        Settings(kafka_sasl_password_file=missing)


@pytest.mark.parametrize(
    ("exc", "message", "answered"),
    [
        (
            SaslAuthenticationFailed(),
            f"Kafka at {HERE} refused the credentials (SASL_SSL, SCRAM-SHA-512 as 'worker'): "
            "wrong user name or password",
            True,
        ),
        (
            KafkaConnectionError(f"Connection at {HERE} closed"),
            f"Kafka at {HERE} closed the connection during a SASL_SSL handshake: "
            "that listener expects another security protocol",
            True,
        ),
        (ConnectionResetError(), "closed the connection during a SASL_SSL handshake", True),
        (ConnectionRefusedError(111, "refused"), f"Kafka at {HERE} does not answer", False),
        (TimeoutError(), f"Kafka at {HERE} does not answer", False),
    ],
)
def test_connection_failures_read_as_one_line(exc: Exception, message: str, answered: bool) -> None:
    refusal = describe_connection_error(exc, HERE, _scram())
    assert message in refusal.message
    assert "\n" not in refusal.message
    assert refusal.answered is answered
    assert (refusal.hint is not None) is answered


def test_an_untrusted_certificate_names_the_ca_setting() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate in certificate chain"
    refusal = describe_connection_error(exc, HERE, _scram())
    assert refusal.message == (
        f"the TLS certificate of Kafka at {HERE} is not trusted: self-signed certificate in "
        "certificate chain (set DSPYOPS_KAFKA_SSL_CAFILE to the CA that signed it)"
    )


def test_an_acl_refusal_names_the_principal_the_operation_and_the_topic() -> None:
    refusal = access_refusal(TopicAuthorizationFailedError(), _scram(), "write to", "t.results")
    assert refusal.message == (
        "Kafka refused User:worker to write to t.results (TopicAuthorizationFailedError): "
        "an ACL must allow it"
    )
