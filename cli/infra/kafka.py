"""A single-node Apache Kafka broker (KRaft, broker+controller) from Maven Central jars.

The jars are resolved once with Maven into ``<home>/kafka-<version>/libs`` and shared by
every stack on the machine; each stack has its own data folder, log and pid file.

This module is long because it holds a broker's whole life (jars, configuration, storage
format, start, readiness, stop) and the probes that readiness and the CLI share; a
secured broker (tests/support/secure_kafka.py) overrides only its listener lines,
format options and client security, and a node of a test cluster
(tests/support/kafka_cluster.py) its node id, quorum and replication lines.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from dspyops.cli.infra import processes
from dspyops.client.refusals import KafkaRefusal, connection_refusal
from dspyops.client.security import PLAINTEXT, KafkaSecurity

# log4j-slf4j-impl binds the broker's slf4j 1.7 logging to log4j2, which Kafka 4 ships.
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dspyops.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class KafkaError(RuntimeError):
    """The broker could not be fetched, formatted or started; the message says why."""


@dataclass(frozen=True)
class KafkaBroker:
    version: str
    home: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    # The KRaft cluster id its storage is formatted with; None: a new one (one node).
    cluster_id: str | None = None

    @property
    def libs_dir(self) -> Path:
        return self.home / f"kafka-{self.version}" / "libs"

    @property
    def base_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.base_dir / "server.properties"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def pid(self) -> int | None:
        return processes.read_pid(self.pid_file)

    def ensure_jars(self) -> Path:
        """Resolve the broker and its runtime dependencies with Maven, once per version."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        if shutil.which("mvn") is None:
            raise KafkaError("Maven (mvn) is not on PATH: install Maven to fetch the Kafka jars")
        work = self.libs_dir.parent
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(_POM.format(version=self.version))
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}",
            "-DincludeScope=runtime",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaError(
                f"mvn could not fetch org.apache.kafka:kafka_2.13:{self.version}:\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        marker.write_text(self.version)
        return self.libs_dir

    def listener_properties(self) -> list[str]:
        """The listeners and their security; a secured broker replaces these lines."""
        return [
            f"listeners=PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]

    def format_options(self) -> list[str]:
        """Extra `kafka-storage format` options (a secured broker adds its SCRAM users)."""
        return []

    def quorum_properties(self) -> list[str]:
        """This node and its controller quorum: itself alone (formatted `--standalone`);
        a node of a cluster names every voter instead."""
        return [
            "node.id=1",
            f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}",
        ]

    def quorum_format_options(self) -> list[str]:
        return ["--standalone"]

    def replication_properties(self) -> list[str]:
        """Kafka's internal topics (consumer offsets, transactions, share groups) on the
        brokers there are: one here."""
        return [
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
        ]

    @property
    def client_security(self) -> KafkaSecurity:
        """How a client of this broker connects (what its readiness check uses)."""
        return PLAINTEXT

    def write_config(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    *self.quorum_properties(),
                    *self.listener_properties(),
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    *self.replication_properties(),
                    "group.initial.rebalance.delay.ms=0",
                    # dspyops creates its topics explicitly with one partition count.
                    "auto.create.topics.enable=false",
                    # Allows the 2 MB dead-letter test payloads to reach the broker.
                    "message.max.bytes=4194304",
                    "",
                ]
            )
        )
        (self.base_dir / "log4j2.properties").write_text(_LOG4J2)

    def format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        done = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                *self.quorum_format_options(),
                "-t",
                self.cluster_id or new_cluster_id(),
                "-c",
                str(self.config_file),
                *self.format_options(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise KafkaError(f"kafka storage format failed:\n{done.stdout}{done.stderr}")

    def start(self, *, timeout_s: float = 60.0) -> float:
        """Start the broker if it is not running; returns seconds until it answered."""
        if self.pid() is not None:
            return 0.0
        began = time.monotonic()
        self.launch()
        self.wait_ready(timeout_s=timeout_s)
        return time.monotonic() - began

    def launch(self) -> None:
        """Configure, format and spawn the broker without waiting for it: the nodes of a
        cluster answer only once a majority of its controllers runs."""
        if _port_answers(self.host, self.port):
            raise KafkaError(
                f"port {self.port} on {self.host} is taken by another process: "
                "set DSPYOPS_KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that cluster"
            )
        self.ensure_jars()
        self.write_config()
        self.format_storage()
        processes.spawn(
            [*self._java(), "kafka.Kafka", str(self.config_file)],
            log_file=self.log_file,
            pid_file=self.pid_file,
        )

    def wait_ready(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise KafkaError(
                    f"the broker exited during start; last log lines:\n"
                    f"{processes.tail(self.log_file)}"
                )
            if metadata_answers(self.bootstrap_servers, self.client_security):
                return
            time.sleep(0.5)
        raise KafkaError(
            f"the broker did not answer metadata requests within {timeout_s:.0f}s; "
            f"log: {self.log_file}\n{processes.tail(self.log_file)}"
        )

    def stop(self) -> bool:
        """Stop the broker; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        processes.terminate(pid, timeout_s=60.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaError("Java (17+) is not on PATH: Kafka needs it")
        return [
            java,
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.base_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
        ]


def _port_answers(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def metadata_answers(
    bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT, *, timeout_s: float = 5.0
) -> bool:
    """True when a Kafka cluster answers a metadata request (lists its topics)."""

    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    if not _port_answers(host or "127.0.0.1", int(port)):
        return False

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000),
            **security.aiokafka_kwargs(),
        )
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            await asyncio.wait_for(admin.list_topics(), timeout_s)
            return True
        except Exception:  # any failure means "not ready yet"
            return False
        finally:
            await admin.close()

    # aiokafka logs every refused connection at ERROR; while waiting that is expected.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(probe())
    finally:
        quiet.setLevel(level)


def kafka_problem(
    bootstrap_servers: str, security: KafkaSecurity, *, timeout_s: float = 5.0
) -> KafkaRefusal | None:
    """None when Kafka answers a metadata request as `security` connects; else why not,
    in one line (not there, or there and refusing our credentials, TLS or protocol)."""
    if metadata_answers(bootstrap_servers, security, timeout_s=timeout_s):
        return None
    refusal = asyncio.run(connection_refusal(bootstrap_servers, security, timeout_s=timeout_s))
    return refusal or KafkaRefusal(
        f"Kafka at {bootstrap_servers} does not answer metadata requests", answered=False
    )


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, as `kafka-storage random-uuid`.

    Like Kafka's own Uuid.randomUuid, never one that starts with '-': the storage tool's
    argument parser would read it as an option ("--cluster-id: expected one argument"),
    which failed about one format in 64.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
