"""Events the projector cannot apply: skipped, recorded with why, never a wedge.

The rule (docs/read-api.md): a batch that fails for a reason that is not an outage is
applied again event by event, each in its own savepoint. An event that still fails (its
data breaks a read table's rules, it refers to a row an earlier skipped event would have
made, it cannot be decoded) leaves no row behind: its savepoint is rolled back, one row
in `projection_errors` says which event and why, and the projector moves past it in the
same transaction. `/health` and `dspyops projections status` report these rows; a
`dspyops projections rebuild` applies every event again (after a fix, the skipped ones
may now apply). An outage or a read schema that is itself broken is not the event's
fault: it is raised, and the projector waits or stops as before. So is an event of a
class the projector does not know (`TopicError`): the workers run a newer version than
the projector, which must be upgraded rather than skip what it cannot read yet.
"""

from __future__ import annotations

from typing import Any

import psycopg
from eventsourcing.persistence import Notification, PersistenceError
from eventsourcing.utils import TopicError
from psycopg import Connection, sql

from dspyops.events.text import clean
from dspyops.projections.read_schema import SKIPPED_EVENTS

MAX_MESSAGE_CHARS = 2_000

# Not the event's fault: the database went away, or the read schema is broken.
NOT_THE_EVENT = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.ProgrammingError,
    psycopg.InternalError,
    PersistenceError,
    TopicError,
)


def is_the_events_fault(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, NOT_THE_EVENT)


def describe(exc: Exception) -> str:
    """Why, without the event's data: PostgreSQL's DETAIL and CONTEXT lines quote the
    values it refused (user inputs), so only its primary message and SQLSTATE are kept."""
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary or type(exc).__name__
        return f"{primary} (SQLSTATE {exc.sqlstate})" if exc.sqlstate else primary
    return f"{type(exc).__name__}: {exc}"


def record(conn: Connection[Any], schema: str, notification: Notification, exc: Exception) -> None:
    """One row saying why the event at `notification.id` was skipped (a retry overwrites)."""
    message = clean(describe(exc))[:MAX_MESSAGE_CHARS]
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.{} (position, event_type, aggregate_id, error_type, message, "
            "recorded_at) VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (position) DO "
            "UPDATE SET error_type = EXCLUDED.error_type, message = EXCLUDED.message, "
            "recorded_at = EXCLUDED.recorded_at"
        ).format(sql.Identifier(schema), sql.Identifier(SKIPPED_EVENTS.name)),
        [
            notification.id,
            clean(notification.topic.rsplit(":", 1)[-1]),
            str(notification.originator_id),
            type(exc).__name__,
            message,
        ],
    )
