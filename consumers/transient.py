"""Which failures are worth waiting out (the database or broker is away) and which are not."""

from __future__ import annotations

import psycopg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from eventsourcing.persistence import InterfaceError, OperationalError

from dspyops.aggregates.app.application import ConflictsExhausted


def is_transient(exc: BaseException) -> bool:
    """True for infrastructure outages: the message is retried, never acknowledged."""
    if isinstance(exc, KafkaError):
        # A message too large or a bad request never gets better by waiting.
        return bool(getattr(exc, "retriable", False)) or isinstance(
            exc, KafkaConnectionError | KafkaTimeoutError
        )
    return isinstance(
        exc,
        ConflictsExhausted  # others keep writing the same aggregate: try again later
        | psycopg.OperationalError
        | psycopg.InterfaceError
        | OperationalError
        | InterfaceError
        | ConnectionError
        | TimeoutError,
    )
