"""The read-model tables: one DDL per table, created in the read schema.

Every row is derived from events only (timestamps are the events' own), so a rebuild from
the same events yields the same rows. `position` is the notification id of the event that
created the row: unique, stable across rebuilds, and the cursor the API pages on.
"""

from __future__ import annotations

from psycopg import Connection, sql

TRACKING_TABLE = "projection_tracking"

TABLES: dict[str, str] = {
    "programs": """
        id uuid PRIMARY KEY,
        program_id text NOT NULL UNIQUE,
        name text NOT NULL,
        signature text NOT NULL,
        module text NOT NULL,
        instructions text,
        description text,
        field_descriptions jsonb NOT NULL,
        status text NOT NULL,
        latest_version integer NOT NULL,
        deployed_version integer,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        position bigint NOT NULL UNIQUE
    """,
    "program_versions": """
        program_id text NOT NULL,
        number integer NOT NULL,
        source text NOT NULL,
        instructions text,
        state jsonb,
        based_on integer,
        optimization_id text,
        optimizer text,
        metric text,
        config jsonb,
        dataset_id text,
        baseline_score double precision,
        optimized_score double precision,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (program_id, number)
    """,
    "datasets": """
        id uuid PRIMARY KEY,
        dataset_id text NOT NULL UNIQUE,
        name text NOT NULL,
        dev_fraction double precision NOT NULL,
        size integer NOT NULL,
        train_size integer NOT NULL,
        dev_size integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        position bigint NOT NULL UNIQUE
    """,
    "executions": """
        id uuid PRIMARY KEY,
        execution_id text NOT NULL UNIQUE,
        program_id text NOT NULL,
        version integer NOT NULL,
        status text NOT NULL,
        inputs jsonb NOT NULL,
        outputs jsonb,
        latency_ms double precision,
        prompt_tokens integer,
        completion_tokens integer,
        total_tokens integer,
        offline boolean NOT NULL,
        error_code text,
        error_message text,
        error_details jsonb,
        command_id text NOT NULL,
        correlation_id text NOT NULL,
        actor text,
        requested_at timestamptz NOT NULL,
        completed_at timestamptz,
        position bigint NOT NULL UNIQUE
    """,
    "runs": """
        id uuid PRIMARY KEY,
        kind text NOT NULL,
        run_id text NOT NULL,
        program_id text NOT NULL,
        dataset_id text NOT NULL,
        status text NOT NULL,
        metric text NOT NULL,
        optimizer text,
        config jsonb,
        base_version integer,
        version integer,
        version_created integer,
        baseline_score double precision,
        optimized_score double precision,
        score double precision,
        per_example jsonb,
        step integer NOT NULL,
        total integer NOT NULL,
        best_score double precision,
        error_code text,
        error_message text,
        cancel_reason text,
        command_id text NOT NULL,
        correlation_id text NOT NULL,
        actor text,
        requested_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        position bigint NOT NULL UNIQUE,
        UNIQUE (kind, run_id)
    """,
    "audit_log": """
        position bigint PRIMARY KEY,
        aggregate_kind text NOT NULL,
        aggregate_id text NOT NULL,
        aggregate_version integer NOT NULL,
        program_id text,
        event_type text NOT NULL,
        occurred_at timestamptz NOT NULL,
        actor text,
        command_id text NOT NULL,
        correlation_id text NOT NULL,
        changes jsonb NOT NULL
    """,
}

# Columns each table is compared on: the primary key orders rows deterministically.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "programs": ("id",),
    "program_versions": ("program_id", "number"),
    "datasets": ("id",),
    "executions": ("id",),
    "runs": ("id",),
    "audit_log": ("position",),
}

INDEXES: tuple[tuple[str, str], ...] = (
    ("programs", "status, position"),
    ("executions", "program_id, position"),
    ("executions", "program_id, status, position"),
    ("executions", "program_id, requested_at"),
    ("runs", "kind, program_id, position"),
    ("audit_log", "program_id, position"),
)


def create_tables(conn: Connection, schema: str) -> None:
    """Create the read schema, its tables and the tracking row if they are missing."""
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
    for table, columns in TABLES.items():
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
                ident,
                sql.Identifier(table),
                sql.SQL(columns),
            )
        )
    for number, (table, columns) in enumerate(INDEXES):
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} ({})").format(
                sql.Identifier(f"{table}_idx{number}"),
                ident,
                sql.Identifier(table),
                sql.SQL(columns),
            )
        )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} ("
            "name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL)"
        ).format(ident, sql.Identifier(TRACKING_TABLE))
    )
