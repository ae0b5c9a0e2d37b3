"""The local stack as settings describe it: which services are ours to start."""

from __future__ import annotations

from dataclasses import dataclass

from dspyops.cli.infra.kafka import KafkaBroker, metadata_answers
from dspyops.cli.infra.postgres import EmbeddedPostgres
from dspyops.settings import Settings


@dataclass(frozen=True)
class Stack:
    settings: Settings

    @property
    def kafka(self) -> KafkaBroker | None:
        """The embedded broker, or None when KAFKA_BOOTSTRAP_SERVERS names a cluster."""
        if self.settings.kafka_is_external:
            return None
        s = self.settings
        return KafkaBroker(
            version=s.kafka_version,
            home=s.home,
            state_dir=s.state_dir,
            host=s.kafka_host,
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
        )

    @property
    def postgres(self) -> EmbeddedPostgres | None:
        """The embedded server, or None when DATABASE_URL names one."""
        if self.settings.postgres_is_external:
            return None
        return EmbeddedPostgres(state_dir=self.settings.state_dir, port=self.settings.pg_port)

    def kafka_answers(self) -> bool:
        return metadata_answers(self.settings.bootstrap_servers, self.settings.kafka_security)

    def postgres_answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.settings.effective_database_url, connect_timeout=3):
                return True
        except psycopg.Error:
            return False
