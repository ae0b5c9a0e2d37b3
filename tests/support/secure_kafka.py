"""A second, secured KRaft broker for tests: TLS, SCRAM users and ACLs, as managed Kafka runs.

From the same jars as the local broker, on free ports, in a temporary folder:

- certificates made here with openssl (a CA, and a broker certificate for 127.0.0.1 and
  localhost signed by it) and a PKCS12 key store and trust store made with openssl/keytool;
- one client listener, SASL_SSL with SCRAM-SHA-512; the controller listener is
  SASL_PLAINTEXT with PLAIN (SCRAM credentials live in the metadata log, which the
  controller must read before it could check them);
- `StandardAuthorizer` (KRaft's ACL authorizer): nothing is allowed without an ACL but to
  the super users (`admin`, also the broker's own inter-broker identity, and `controller`);
- SCRAM users made at format time (`kafka-storage format --add-scram`).

ACLs are created through the admin user with Kafka's CreateAcls request (aiokafka has the
request but no admin method; the CLI tool, kafka-acls, is not in the broker's jars).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.admin import CreateAclsRequest

from dspyops.cli.infra.kafka import KafkaBroker
from dspyops.client.security import KafkaSecurity
from dspyops.events.topics import Topics

ADMIN = "admin"
WORKER = "worker"
PRODUCER = "producer"
_CONTROLLER = "controller"

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
_TOPIC, _GROUP = 2, 3
_LITERAL, _PREFIXED = 3, 4
_READ, _WRITE = 3, 4
_ALLOW = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Certificates:
    folder: Path
    store_password: str

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def truststore(self) -> Path:
        return self.folder / "truststore.p12"


def make_certificates(folder: Path) -> Certificates:
    """A CA and a broker certificate (127.0.0.1, localhost) it signed, valid two days."""
    folder.mkdir(parents=True, exist_ok=True)
    certs = Certificates(folder, secrets.token_hex(12))

    def run(*args: str) -> None:
        subprocess.run(args, cwd=folder, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=dspyops test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
        "-out", "broker.csr", "-subj", "/CN=localhost")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "broker.pem", "-extfile", "san.ext")  # fmt: skip
    run("openssl", "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
        "-certfile", "ca.pem", "-name", "broker", "-out", "broker.p12",
        "-passout", f"pass:{certs.store_password}")  # fmt: skip
    run("keytool", "-importcert", "-noprompt", "-storetype", "PKCS12", "-alias", "ca",
        "-file", "ca.pem", "-keystore", "truststore.p12",
        "-storepass", certs.store_password)  # fmt: skip
    return certs


@dataclass(frozen=True)
class SecureKafkaBroker(KafkaBroker):
    """A KRaft broker whose only client listener is SASL_SSL (SCRAM-SHA-512), with ACLs."""

    certificates: Certificates | None = None
    # name -> password of every SCRAM user (ADMIN is required: the broker uses it too).
    users: Mapping[str, str] = field(default_factory=dict)
    controller_password: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def certs(self) -> Certificates:
        assert self.certificates is not None, "a SecureKafkaBroker needs its certificates"
        return self.certificates

    def listener_properties(self) -> list[str]:
        certs, host = self.certs, self.host
        admin_password = self.users[ADMIN]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return [
            f"listeners=SASL_SSL://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://{host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} required "
            f'username="{ADMIN}" password="{admin_password}";',
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{_CONTROLLER}" password="{self.controller_password}" '
            f'user_{_CONTROLLER}="{self.controller_password}";',
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={certs.keystore}",
            f"ssl.keystore.password={certs.store_password}",
            f"ssl.key.password={certs.store_password}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={certs.truststore}",
            f"ssl.truststore.password={certs.store_password}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN};User:{_CONTROLLER}",
        ]

    def format_options(self) -> list[str]:
        options: list[str] = []
        for name, password in self.users.items():
            options += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return options

    @property
    def client_security(self) -> KafkaSecurity:
        return self.security_for(ADMIN)

    def security_for(self, user: str, *, password: str | None = None) -> KafkaSecurity:
        """How `user` connects (with `password` instead of theirs, to be refused)."""
        return KafkaSecurity.model_validate(
            {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "username": user,
                "password": self.users.get(user, "") if password is None else password,
                "cafile": self.certs.ca,
            }
        )

    async def grant_dspyops(
        self,
        topics: Topics,
        partitions: int,
        *,
        producer_writes_commands: bool = True,
        producer_reads_results: bool = True,
    ) -> None:
        """Create `topics` (as the admin: the others may not) and grant the two principals
        of dspyops what they need and no more:

        - `worker`: read the command topics and its consumer group (the prefix), write
          results, events and dead letters;
        - `producer`: write the command topics, read the results topic (the client awaits
          its answers there, without a consumer group); less when a test asks.
        """
        worker, producer = f"User:{WORKER}", f"User:{PRODUCER}"
        written = (topics.results, topics.events, topics.deadletter)
        acls = [
            *[(_TOPIC, t, _LITERAL, worker, _READ) for t in topics.commands],
            *[(_TOPIC, t, _LITERAL, worker, _WRITE) for t in written],
            # The worker's group id is <prefix>worker; a topic DESCRIBE comes with READ/WRITE.
            (_GROUP, topics.prefix, _PREFIXED, worker, _READ),
            *[
                (_TOPIC, t, _LITERAL, producer, _WRITE)
                for t in topics.commands
                if producer_writes_commands
            ],
            *[(_TOPIC, topics.results, _LITERAL, producer, _READ)] * producer_reads_results,
        ]
        await self._create(topics, partitions, acls)

    async def _create(
        self, topics: Topics, partitions: int, acls: list[tuple[int, str, int, str, int]]
    ) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, **self.client_security.aiokafka_kwargs()
        )
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics.all]
            )
            for resource, name, pattern, principal, operation in acls:
                request = CreateAclsRequest(
                    resource, name, pattern, principal, "*", operation, _ALLOW
                )
                response = await admin._send_request(request)
                errors = [r for r in response.creation_responses if r[0] != 0]
                assert not errors, f"CreateAcls {name} {principal}: {errors}"
        finally:
            await admin.close()


def start_secure_broker(base: Path, *, home: Path, version: str) -> SecureKafkaBroker:
    """Certificates, SCRAM users (admin, worker, producer), then the broker, started."""
    broker = SecureKafkaBroker(
        version=version,
        home=home,
        state_dir=base,
        port=free_port(),
        controller_port=free_port(),
        certificates=make_certificates(base / "tls"),
        users={name: secrets.token_hex(12) for name in (ADMIN, WORKER, PRODUCER)},
    )
    broker.start(timeout_s=120)
    return broker
