"""Read schemas made by an earlier layout, brought up to the tables `read_schema` declares.

`create_tables` only creates what is missing, so a read schema built before a column was
added lacks it. A column that can be computed from what the rows already hold is declared
here with its backfill: the projector adds and fills it when it opens the read schema, in
the same transaction (and under the same lock) as it creates tables, so readers see the
old table or the filled one, never half. Any other missing column cannot be derived
without the events: the projector then refuses to start with `OutdatedReadSchema`, which
says to run `dspyops projections rebuild` (a rebuild projects every event into fresh
tables and swaps them in).

A table added later is created empty, which is right when the events it holds are new
too (feedback, corpora). One that holds kinds of events stored before it (`NEW_TABLES`)
is right empty only if the read schema never projected such an event; its audit trail,
which has an entry for every program event, tells, and a read schema that did project
some needs the rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import Connection, sql

from dspyops.projections.appliers.programs import signature_schemas
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.appliers.serving import NEXT_STATE
from dspyops.projections.read_schema import (
    AUDIT_LOG,
    DATASET_EXAMPLES,
    EXECUTIONS,
    PROGRAM_VERSIONS,
    PROGRAMS,
    READ_MODELS,
    RUNS,
    SERVING_CHANGES,
    Table,
)


class OutdatedReadSchema(Exception):
    """The read schema lacks columns no backfill can fill: it needs a rebuild."""


@dataclass(frozen=True)
class Upgrade:
    table: Table
    columns: tuple[str, ...]
    # Fills the added columns of every existing row; returns how many rows it filled.
    backfill: Callable[[Connection, str], int]


def _fill_version_schemas(conn: Connection, schema: str) -> int:
    ident = sql.Identifier(schema)
    versions = conn.execute(
        sql.SQL(
            "SELECT v.program_id, v.number, v.instructions, p.signature, p.field_descriptions "
            "FROM {}.{} v JOIN {}.{} p USING (program_id)"
        ).format(ident, sql.Identifier(PROGRAM_VERSIONS.name), ident, sql.Identifier(PROGRAMS.name))
    ).fetchall()
    rows = Rows(conn, schema)
    for program_id, number, instructions, signature, descriptions in versions:
        rows.update(
            PROGRAM_VERSIONS,
            {"program_id": program_id, "number": number},
            signature_schemas(signature, instructions, descriptions),
        )
    return len(versions)


def _fill_production_alias(conn: Connection, schema: str) -> int:
    """Rows made before aliases: no alias was set then, `production` is the deployed
    version, as projecting their events again gives."""
    filled = conn.execute(
        sql.SQL(
            "UPDATE {}.{} SET aliases = jsonb_build_object('production', deployed_version) "
            "WHERE deployed_version IS NOT NULL"
        ).format(sql.Identifier(schema), sql.Identifier(PROGRAMS.name))
    )
    return filled.rowcount


def _fill_online_evaluation(conn: Connection, schema: str) -> int:
    """Rows made before the column: each program's latest `OnlineEvaluationSet` audit
    entry holds exactly what the column would (its `online_evaluation.after`, noted by
    every layout since the event existed); programs without one had none."""
    ident = sql.Identifier(schema)
    filled = conn.execute(
        sql.SQL(
            "UPDATE {}.{} p SET online_evaluation = latest.judged FROM ("
            " SELECT DISTINCT ON (aggregate_id) aggregate_id,"
            " changes -> 'online_evaluation' -> 'after' AS judged FROM {}.{}"
            " WHERE aggregate_kind = 'program' AND event_type = 'OnlineEvaluationSet'"
            " ORDER BY aggregate_id, position DESC) latest"
            " WHERE p.program_id = latest.aggregate_id"
            " AND jsonb_typeof(latest.judged) = 'object'"
        ).format(ident, sql.Identifier(PROGRAMS.name), ident, sql.Identifier(AUDIT_LOG.name))
    )
    return filled.rowcount


def _nothing_to_fill(conn: Connection, schema: str) -> int:
    """Rows made before the column existed came from events that did not carry it: NULL,
    exactly what projecting those events again gives."""
    return 0


# In the order the columns were added.
UPGRADES: tuple[Upgrade, ...] = (
    Upgrade(PROGRAM_VERSIONS, ("input_schema", "output_schema"), _fill_version_schemas),
    Upgrade(RUNS, ("errored",), _nothing_to_fill),
    Upgrade(EXECUTIONS, ("trace", "failed_step"), _nothing_to_fill),
    Upgrade(EXECUTIONS, ("cost_usd",), _nothing_to_fill),
    Upgrade(PROGRAMS, ("budget",), _nothing_to_fill),
    Upgrade(RUNS, ("kept_version",), _nothing_to_fill),
    Upgrade(PROGRAMS, ("aliases",), _fill_production_alias),
    # No split existed before splits: the column's default, '{}', is what events give.
    Upgrade(PROGRAMS, ("splits",), _nothing_to_fill),
    Upgrade(EXECUTIONS, ("route",), _nothing_to_fill),
    Upgrade(PROGRAMS, ("feedback_scale",), _nothing_to_fill),
    Upgrade(RUNS, ("dataset_version", "provenance"), _nothing_to_fill),
    Upgrade(PROGRAM_VERSIONS, ("dataset_version",), _nothing_to_fill),
    Upgrade(PROGRAMS, ("online_evaluation",), _fill_online_evaluation),
)


@dataclass(frozen=True)
class NewTable:
    table: Table
    # The events (audit_log.event_type) whose rows it holds, of aggregates of this kind.
    event_types: tuple[str, ...]
    aggregate_kind: str = "program"


NEW_TABLES: tuple[NewTable, ...] = (
    NewTable(SERVING_CHANGES, tuple(sorted(cls.__name__ for cls in NEXT_STATE))),
    NewTable(DATASET_EXAMPLES, ("Registered", "ExamplesAppended"), aggregate_kind="dataset"),
)


def check_new_tables(conn: Connection, schema: str) -> None:
    """Refuse a read schema that lacks a `NEW_TABLES` table but projected events it holds.

    Runs before the missing tables are created: once created, the table would look filled."""
    present = _present_columns(conn, schema)
    if AUDIT_LOG.name not in present:
        return  # a new read schema: every table is created and filled from the start
    for new in NEW_TABLES:
        if new.table.name in present:
            continue
        projected = conn.execute(
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {}.{} WHERE aggregate_kind = %s "
                "AND event_type = ANY(%s))"
            ).format(sql.Identifier(schema), sql.Identifier(AUDIT_LOG.name)),
            [new.aggregate_kind, list(new.event_types)],
        ).fetchone()
        if projected and projected[0]:
            raise OutdatedReadSchema(
                f"read schema {schema!r} was made by an earlier layout without the table "
                f"{new.table.name!r}, which only the events can fill: run "
                "`dspyops projections rebuild`"
            )


def upgrade(conn: Connection, schema: str) -> list[str]:
    """Add and fill the columns the read tables lack; one line per upgrade applied."""
    missing = _missing_columns(conn, schema)
    done: list[str] = []
    for step in UPGRADES:
        added = [c for c in step.columns if c in missing.get(step.table.name, set())]
        if not added:
            continue
        for column in step.columns:
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}").format(
                    sql.Identifier(schema),
                    sql.Identifier(step.table.name),
                    sql.Identifier(column),
                    sql.SQL(dict(step.table.columns)[column]),
                )
            )
        filled = step.backfill(conn, schema)
        missing[step.table.name] -= set(step.columns)
        done.append(
            f"read schema {schema}: added {step.table.name}.{'/'.join(step.columns)} "
            f"(made by an earlier layout), filled {filled} rows"
        )
    left = {table: sorted(columns) for table, columns in missing.items() if columns}
    if left:
        raise OutdatedReadSchema(
            f"read schema {schema!r} was made by an earlier layout and lacks columns "
            f"{left} that only the events can fill: run `dspyops projections rebuild`"
        )
    return done


def _missing_columns(conn: Connection, schema: str) -> dict[str, set[str]]:
    present = _present_columns(conn, schema)
    return {table.name: set(table.names) - present.get(table.name, set()) for table in READ_MODELS}


def _present_columns(conn: Connection, schema: str) -> dict[str, set[str]]:
    """Table name -> its columns, for every table the read schema has."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
        [schema],
    ).fetchall()
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(table, set()).add(column)
    return present
