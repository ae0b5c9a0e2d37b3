"""Applying domain events to the read tables, inside the caller's transaction.

One `Applier` lives for one batch: the batch's events are applied in store order and the
caller commits them with the tracking position. Executions dominate the volume, so their
rows are built in memory and inserted together at `flush`; every other kind is written
as it comes, reading its current row where the audit trail needs before-values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from dspyops.aggregates.dataset import DEV, TRAIN, Dataset
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.execution import FAILED, REQUESTED, SUCCEEDED, Execution
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import DEPLOYED, DEPRECATED, DRAFT, OPTIMIZED, TRAINING, Program
from dspyops.aggregates.run import CANCELLED, COMPLETED, RUNNING, Run
from dspyops.aggregates.run import FAILED as RUN_FAILED
from dspyops.aggregates.run import REQUESTED as RUN_REQUESTED
from dspyops.projections.audit import changes
from dspyops.projections.read_schema import EXECUTIONS, READ_MODELS

Row = dict[str, Any]
# Values of json(b) columns are sent as JSON, whatever table they are in.
JSON_COLUMNS = frozenset(
    name
    for table in READ_MODELS
    for name in table.names
    if table.sql_type(name) in {"json", "jsonb"}
)
EXECUTION_COLUMNS = EXECUTIONS.names
# Program fields an audit entry shows; `lm` names a server-side profile and stays out.
PROGRAM_AUDITED = (
    "name",
    "signature",
    "module",
    "instructions",
    "description",
    "field_descriptions",
    "status",
    "latest_version",
    "deployed_version",
)


def _event(aggregate: type, name: str) -> type:
    # eventsourcing creates these classes from the @event decorators at class creation.
    event_class: type = getattr(aggregate, name)
    return event_class


def _param(column: str, value: Any) -> Any:
    return Jsonb(value) if column in JSON_COLUMNS and value is not None else value


def _meta(event: Any) -> Row:
    return {
        "command_id": event.command_id,
        "correlation_id": event.correlation_id,
        "actor": event.actor,
    }


class Applier:
    def __init__(self, conn: Connection, schema: str) -> None:
        self.conn = conn
        self.schema = sql.Identifier(schema)
        self.pending_executions: dict[UUID, Row] = {}
        self.handlers: dict[type, Callable[[Any, int], object]] = {
            _event(Program, "Registered"): self.program_registered,
            _event(Program, "TrainingStarted"): lambda e, p: self.program_changed(
                e, p, status=TRAINING
            ),
            _event(Program, "Updated"): self.program_updated,
            _event(Program, "Optimized"): self.program_optimized,
            _event(Program, "Deployed"): lambda e, p: self.program_changed(
                e, p, status=DEPLOYED, deployed_version=e.version
            ),
            _event(Program, "RolledBack"): lambda e, p: self.program_changed(
                e, p, deployed_version=e.version
            ),
            _event(Program, "Deprecated"): lambda e, p: self.program_changed(
                e, p, status=DEPRECATED
            ),
            _event(Dataset, "Registered"): self.dataset_registered,
            _event(Dataset, "ExamplesAppended"): self.examples_appended,
            _event(Execution, "Requested"): self.execution_requested,
            _event(Execution, "Succeeded"): self.execution_succeeded,
            _event(Execution, "Failed"): self.execution_failed,
            _event(Optimization, "Requested"): self.optimization_requested,
            _event(Evaluation, "Requested"): self.evaluation_requested,
            _event(Run, "Started"): lambda e, p: self.run_changed(e, p, status=RUNNING),
            _event(Run, "Progressed"): lambda e, p: self.run_changed(
                e, p, step=e.step, total=e.total, best_score=e.best_score
            ),
            _event(Run, "Failed"): lambda e, p: self.run_changed(
                e, p, status=RUN_FAILED, error_code=e.code, error_message=e.message
            ),
            _event(Run, "Cancelled"): lambda e, p: self.run_changed(
                e, p, status=CANCELLED, cancel_reason=e.reason
            ),
            _event(Optimization, "Completed"): lambda e, p: self.run_changed(
                e,
                p,
                status=COMPLETED,
                version_created=e.version,
                baseline_score=e.baseline_score,
                optimized_score=e.optimized_score,
            ),
            _event(Evaluation, "Completed"): self.evaluation_completed,
        }

    def apply(self, event: Any, position: int) -> None:
        # Run's shared events reach here as subclasses too, so walk the class's bases.
        for cls in type(event).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                handler(event, position)
                return
        # HandledCommand records (and any future kind) have no read model here.

    def flush(self) -> None:
        rows = list(self.pending_executions.values())
        self.pending_executions.clear()
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(
                    self._insert_sql("executions", EXECUTION_COLUMNS),
                    [tuple(_param(c, row[c]) for c in EXECUTION_COLUMNS) for row in rows],
                )

    # --- SQL helpers -----------------------------------------------------------------

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.schema, sql.Identifier(name))

    def _insert_sql(self, table: str, columns: tuple[str, ...] | list[str]) -> sql.Composed:
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._table(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )

    def _insert(self, table: str, row: Row) -> None:
        columns = list(row)
        self.conn.execute(self._insert_sql(table, columns), [_param(c, row[c]) for c in columns])

    def _update(self, table: str, key: Row, values: Row) -> None:
        self.conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE {}").format(
                self._table(table),
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
                ),
                sql.SQL(" AND ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in key
                ),
            ),
            [_param(c, v) for c, v in values.items()] + list(key.values()),
        )

    def _select(self, table: str, key: Row) -> Row:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {} WHERE {}").format(
                    self._table(table),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in key
                    ),
                ),
                list(key.values()),
            )
            row = cur.fetchone()
        if row is None:
            raise LookupError(f"read model {table} has no row {key}: events out of order?")
        return row

    def _audit(
        self,
        event: Any,
        position: int,
        *,
        kind: str,
        aggregate_id: str,
        program_id: str | None,
        changed: Row,
    ) -> None:
        self._insert(
            "audit_log",
            {
                "position": position,
                "aggregate_kind": kind,
                "aggregate_id": aggregate_id,
                "aggregate_version": event.originator_version,
                "program_id": program_id,
                "event_type": type(event).__name__,
                "occurred_at": event.timestamp,
                **_meta(event),
                "changes": changed,
            },
        )

    # --- programs --------------------------------------------------------------------

    def program_registered(self, e: Any, position: int) -> None:
        row = {
            "id": e.originator_id,
            "program_id": e.program_id,
            "name": e.name,
            "signature": e.signature,
            "module": e.module,
            "instructions": e.instructions,
            "description": e.description,
            "field_descriptions": dict(e.field_descriptions),
            "status": DRAFT,
            "latest_version": 1,
            "deployed_version": None,
            "created_at": e.timestamp,
            "updated_at": e.timestamp,
            "position": position,
        }
        self._insert("programs", row)
        self._insert_version(
            e.program_id, e.timestamp, number=1, source="registered", instructions=e.instructions
        )
        after = {name: row[name] for name in PROGRAM_AUDITED}
        self._audit(
            e,
            position,
            kind="program",
            aggregate_id=e.program_id,
            program_id=e.program_id,
            changed=changes(None, after),
        )

    def program_changed(self, e: Any, position: int, **after: Any) -> Row:
        before = self._select("programs", {"id": e.originator_id})
        self._update("programs", {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        program_id = before["program_id"]
        self._audit(
            e,
            position,
            kind="program",
            aggregate_id=program_id,
            program_id=program_id,
            changed=changes(before, after),
        )
        return before

    def program_updated(self, e: Any, position: int) -> None:
        after: Row = {}
        if e.description is not None:
            after["description"] = e.description
        if e.instructions is None:
            self.program_changed(e, position, **after)
            return
        before = self._select("programs", {"id": e.originator_id})
        latest = before["latest_version"]
        previous = self._select(
            "program_versions", {"program_id": before["program_id"], "number": latest}
        )
        self._insert_version(
            before["program_id"],
            e.timestamp,
            number=latest + 1,
            source="updated",
            instructions=e.instructions,
            state=previous["state"],
            based_on=latest,
        )
        self.program_changed(
            e, position, **after, instructions=e.instructions, latest_version=latest + 1
        )

    def program_optimized(self, e: Any, position: int) -> None:
        before = self._select("programs", {"id": e.originator_id})
        latest = before["latest_version"]
        self._insert_version(
            before["program_id"],
            e.timestamp,
            number=latest + 1,
            source="optimized",
            instructions=before["instructions"],
            state=e.state,
            based_on=latest,
            optimization_id=e.optimization_id,
            optimizer=e.optimizer,
            metric=e.metric,
            config=e.config,
            dataset_id=e.dataset_id,
            baseline_score=e.baseline_score,
            optimized_score=e.optimized_score,
        )
        self.program_changed(e, position, status=OPTIMIZED, latest_version=latest + 1)

    def _insert_version(
        self, program_id: str, at: datetime, *, number: int, source: str, **fields: Any
    ) -> None:
        row: Row = {
            "program_id": program_id,
            "number": number,
            "source": source,
            "instructions": None,
            "state": None,
            "based_on": None,
            "optimization_id": None,
            "optimizer": None,
            "metric": None,
            "config": None,
            "dataset_id": None,
            "baseline_score": None,
            "optimized_score": None,
            "created_at": at,
        }
        row.update(fields)
        self._insert("program_versions", row)

    # --- datasets --------------------------------------------------------------------

    def dataset_registered(self, e: Any, position: int) -> None:
        sizes = _sizes(e.splits)
        self._insert(
            "datasets",
            {
                "id": e.originator_id,
                "dataset_id": e.dataset_id,
                "name": e.name,
                "dev_fraction": e.dev_fraction,
                **sizes,
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
                "position": position,
            },
        )
        after = {"name": e.name, "dev_fraction": e.dev_fraction, **sizes}
        self._audit(
            e,
            position,
            kind="dataset",
            aggregate_id=e.dataset_id,
            program_id=None,
            changed=changes(None, after),
        )

    def examples_appended(self, e: Any, position: int) -> None:
        before = self._select("datasets", {"id": e.originator_id})
        added = _sizes(e.splits)
        after = {name: before[name] + added[name] for name in added}
        self._update("datasets", {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        self._audit(
            e,
            position,
            kind="dataset",
            aggregate_id=before["dataset_id"],
            program_id=None,
            changed=changes(before, after),
        )

    # --- executions ------------------------------------------------------------------

    def execution_requested(self, e: Any, position: int) -> None:
        self.pending_executions[e.originator_id] = {
            "id": e.originator_id,
            "execution_id": e.execution_id,
            "program_id": e.program_id,
            "version": e.version,
            "status": REQUESTED,
            "inputs": dict(e.inputs),
            "outputs": None,
            "latency_ms": None,
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_tokens": None,
            "offline": False,
            "error_code": None,
            "error_message": None,
            "error_details": None,
            **_meta(e),
            "requested_at": e.timestamp,
            "completed_at": None,
            "position": position,
        }

    def execution_succeeded(self, e: Any, position: int) -> None:
        usage = dict(e.usage or {})
        self._execution_ended(
            e,
            status=SUCCEEDED,
            outputs=dict(e.outputs),
            latency_ms=e.latency_ms,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            offline=bool(e.offline),
            completed_at=e.timestamp,
        )

    def execution_failed(self, e: Any, position: int) -> None:
        self._execution_ended(
            e,
            status=FAILED,
            latency_ms=e.latency_ms,
            error_code=e.code,
            error_message=e.message,
            error_details=list(e.details),
            completed_at=e.timestamp,
        )

    def _execution_ended(self, e: Any, **values: Any) -> None:
        pending = self.pending_executions.get(e.originator_id)
        if pending is not None:
            pending.update(values)
        else:
            self._update("executions", {"id": e.originator_id}, values)

    # --- optimizations and evaluations -----------------------------------------------

    def optimization_requested(self, e: Any, position: int) -> None:
        self._run_requested(
            e,
            position,
            kind="optimization",
            run_id=e.optimization_id,
            optimizer=e.optimizer,
            config=dict(e.config),
            base_version=e.base_version,
        )

    def evaluation_requested(self, e: Any, position: int) -> None:
        self._run_requested(
            e, position, kind="evaluation", run_id=e.evaluation_id, version=e.version
        )

    def _run_requested(self, e: Any, position: int, **fields: Any) -> None:
        row: Row = {
            "id": e.originator_id,
            "program_id": e.program_id,
            "dataset_id": e.dataset_id,
            "status": RUN_REQUESTED,
            "metric": e.metric,
            "step": 0,
            "total": 0,
            **_meta(e),
            "requested_at": e.timestamp,
            "updated_at": e.timestamp,
            "position": position,
            **fields,
        }
        self._insert("runs", row)
        audited = {
            k: v
            for k, v in row.items()
            if k
            not in {
                "id",
                "position",
                "requested_at",
                "updated_at",
                "command_id",
                "correlation_id",
                "actor",
            }
        }
        self._audit(
            e,
            position,
            kind=row["kind"],
            aggregate_id=row["run_id"],
            program_id=row["program_id"],
            changed=changes(None, audited),
        )

    def run_changed(self, e: Any, position: int, **after: Any) -> None:
        before = self._select("runs", {"id": e.originator_id})
        self._update("runs", {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        audited = {k: v for k, v in after.items() if k != "per_example"}
        self._audit(
            e,
            position,
            kind=before["kind"],
            aggregate_id=before["run_id"],
            program_id=before["program_id"],
            changed=changes(before, audited),
        )

    def evaluation_completed(self, e: Any, position: int) -> None:
        self.run_changed(
            e, position, status=COMPLETED, score=e.score, per_example=list(e.per_example)
        )


def _sizes(splits: list[str]) -> Row:
    return {"size": len(splits), "train_size": splits.count(TRAIN), "dev_size": splits.count(DEV)}
