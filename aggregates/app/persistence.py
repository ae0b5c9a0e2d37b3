"""How the event store is chosen: eventsourcing reads its persistence from an env mapping.

The same application classes run on PostgreSQL in production and on eventsourcing's
in-memory (POPO) store in unit tests; only this mapping differs.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


class DatabaseUrlError(ValueError):
    """A DATABASE_URL that cannot be turned into eventsourcing's PostgreSQL settings."""


def eventsourcing_env(database_url: str, *, schema: str | None = None) -> dict[str, str]:
    """The eventsourcing PostgreSQL settings for `database_url` (postgresql://user:pw@host:port/db)."""
    parts = urlsplit(database_url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise DatabaseUrlError(f"expected a postgresql:// URL, got scheme {parts.scheme!r}")
    dbname = parts.path.lstrip("/")
    if not dbname or not parts.hostname:
        raise DatabaseUrlError("the database URL needs a host and a database name")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(dbname),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "CREATE_TABLE": "y",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    return env


def in_memory_env() -> dict[str, str]:
    """eventsourcing's plain-old-Python-objects store: for unit tests only."""
    return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
