"""Every setting dspyops reads, in one place.

Variables of ours are prefixed ``DSPYOPS_``; ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL`` keep their common names so an existing cluster or server plugs in
the way operators expect.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from dspyops.client.security import KafkaSecurity, SaslMechanism, SecurityProtocol


def _default_home() -> Path:
    return Path.home() / ".cache" / "dspyops"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSPYOPS_", extra="ignore")

    # Kafka: when set, that cluster is used and `dspyops infra up` starts no broker.
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "DSPYOPS_KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.1"
    topic_prefix: str = "dspyops."
    topic_partitions: int = 4
    # Replicas of every topic dspyops creates and their min.insync.replicas; unset: 3 and
    # 2 on a cluster of three or more brokers, 1 and 1 on one broker (consumers/topic_admin).
    topic_replication_factor: int | None = Field(default=None, ge=1, le=32)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1, le=32)
    # Kafka security (the `kafka_security` group): TLS, SASL and their files. Each
    # password comes from its variable or from the file its `_FILE` variable names.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_key_password_file: Path | None = None

    # PostgreSQL: when set, that server is used and `dspyops infra up` starts none.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DSPYOPS_DATABASE_URL")
    )
    pg_port: int = 5432
    # PostgreSQL schema of the event store (eventsourcing's tables and the relay position).
    event_store_schema: str = Field(default="dspyops", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    # Worker processes `dspyops worker` runs under one parent (unset: one per core; 1: the
    # command is the worker itself), and the seconds that parent gives them to stop.
    worker_processes: int | None = Field(default=None, ge=1, le=512)
    worker_stop_grace_s: float = Field(default=15.0, gt=0, le=600)
    # Worker: executions in flight per worker process, and the LM call limits.
    execution_concurrency: int = Field(default=200, ge=1, le=10_000)
    execution_timeout_s: float = Field(default=60.0, gt=0)
    # How soon a dead worker's partitions move to the others (Kafka session timeout).
    consumer_session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    # The longest a worker's fetch waits for new records (consumers/faust_app.py): what a
    # command can wait for while aiokafka holds partitions out of the fetch in flight.
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=1, le=1500)
    # How often the outbox relay looks for new stored events when it has caught up.
    relay_poll_interval_s: float = Field(default=0.05, gt=0)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Results (and progress, dead letters) through an outbox table and Kafka transactions:
    # a read_committed consumer sees each exactly once (consumers/result_relay.py).
    results_exactly_once: bool = False
    # How long published outbox rows keep their ids, so a command redelivered later than
    # this could publish its results again.
    result_outbox_retention_s: float = Field(default=86_400.0, gt=0)
    # Commands per producer a worker process applies (rate_limits.py), in the
    # `limits` notation: "100/second", or several as "100/second;3000/minute". None: no
    # limit. Producers are told apart by the envelope's `source`, or its `actor`.
    command_rate_limit: str | None = None
    command_rate_limit_key: Literal["source", "actor"] = "source"

    # Where the local stack keeps jars, data folders, logs and pid files.
    home: Path = Field(default_factory=_default_home)
    state_dir: Path = Field(default_factory=lambda: _default_home() / "stack")

    # LM profiles: JSON object name -> profile, or a path to a JSON file holding one.
    lm_profiles: str | None = None

    # PostgreSQL schema of the read models and their tracking position (projections/).
    read_model_schema: str = Field(default="dspyops_read", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # Events applied per read-side transaction, and the wait when the projector caught up.
    projection_batch_size: int = Field(default=1000, ge=1, le=10_000)
    projection_poll_interval_s: float = Field(default=0.1, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # When set, every API route but /health needs `Authorization: Bearer <token>`.
    api_token: str | None = Field(default=None, repr=False)
    api_pool_size: int = Field(default=10, ge=1, le=200)
    # How long a request waits for one of those connections before answering 503.
    api_db_wait_s: float = Field(default=5.0, gt=0, le=300)
    # uvicorn worker processes of `dspyops api` (each with its own pool of api_pool_size).
    api_workers: int = Field(default=1, ge=1, le=64)

    # Prometheus /metrics of the worker and the projector (the API serves its own at
    # /metrics); port 0: not served. A second process on one port logs and goes on.
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    projector_metrics_port: int = Field(default=9102, ge=0, le=65535)

    _kafka_security: KafkaSecurity = PrivateAttr(default_factory=KafkaSecurity)

    @field_validator("command_rate_limit", mode="before")
    @classmethod
    def _rates_parse(cls, value: str | None) -> str | None:
        # An empty variable (a compose file blanking it) means no limit, as an unset one.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            # The server extra's: a client-only install never applies a rate limit.
            from dspyops.rate_limits import parse_rates
        except ImportError:
            return value
        parse_rates(value)
        return value

    @model_validator(mode="after")
    def _read_kafka_security(self) -> Settings:
        self._kafka_security = KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=_secret(
                self.kafka_sasl_password, self.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD"
            ),
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
            key_password=_secret(
                self.kafka_ssl_key_password,
                self.kafka_ssl_key_password_file,
                "KAFKA_SSL_KEY_PASSWORD",
            ),
        )
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        """How every Kafka client of this process connects (TLS, SASL), read once."""
        return self._kafka_security

    @property
    def api_url(self) -> str:
        """Where the read API answers (what the CLI's read commands call by default)."""
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def kafka_is_external(self) -> bool:
        return self.kafka_bootstrap_servers is not None

    @property
    def postgres_is_external(self) -> bool:
        return self.database_url is not None

    @property
    def embedded_database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/dspyops"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.embedded_database_url


def _secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr | None:
    """A password from its variable, or from the file `DSPYOPS_<name>_FILE` names (one
    trailing newline dropped, as secret mounts and `echo` leave one)."""
    if file is None:
        return value
    if value is not None:
        raise ValueError(f"set DSPYOPS_{name} or DSPYOPS_{name}_FILE, not both")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"DSPYOPS_{name}_FILE: cannot read {file}: {exc}") from None
    return SecretStr(text.removesuffix("\n").removesuffix("\r"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def setting_problems(exc: ValidationError) -> list[str]:
    """One line per problem of a Settings validation error, naming the variable to fix
    (what a CLI prints instead of pydantic's traceback)."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else None
        info = Settings.model_fields.get(field) if field else None
        if info is None:
            lines.append(message)
            continue
        alias = info.validation_alias
        variable = (
            str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"DSPYOPS_{field}".upper()
        )
        lines.append(f"{variable}: {message}")
    return lines
