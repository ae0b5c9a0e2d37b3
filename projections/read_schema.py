"""The read tables, declared once: each column with its SQL type, each table's key.

The DDL (`projections/ddl.py`), the appliers that write rows and the API's views that read
them all take their column lists from here, so a column is added in one place.

Every row is derived from events only (timestamps are the events' own), so a rebuild from
the same events yields the same rows. `position` is the notification id of the event that
created the row: unique, stable across rebuilds, and the cursor the API pages on.

This module is long because every read table is declared here, in one place, on purpose:
a column added anywhere else would drift from the DDL and the queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

Column = tuple[str, str]


@dataclass(frozen=True)
class Table:
    name: str
    # (name, SQL type with its column constraints), in table order.
    columns: tuple[Column, ...]
    # The primary key: rows are compared and ordered on it.
    key: tuple[str, ...]
    # Table constraints besides the primary key.
    constraints: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def without(self, *excluded: str) -> tuple[str, ...]:
        unknown = set(excluded) - set(self.names)
        if unknown:
            raise KeyError(f"{self.name} has no columns {sorted(unknown)}")
        return tuple(name for name in self.names if name not in excluded)

    @cached_property
    def types(self) -> dict[str, str]:
        """Each column's bare type (`jsonb`, `text`, ...), without its constraints."""
        return {name: sql_type.split()[0] for name, sql_type in self.columns}

    def sql_type(self, column: str) -> str:
        return self.types[column]


PROGRAMS = Table(
    "programs",
    (
        ("id", "uuid"),
        ("program_id", "text NOT NULL UNIQUE"),
        ("name", "text NOT NULL"),
        ("signature", "text NOT NULL"),
        ("module", "text NOT NULL"),
        ("instructions", "text"),
        ("description", "text"),
        ("field_descriptions", "jsonb NOT NULL"),
        ("status", "text NOT NULL"),
        ("latest_version", "integer NOT NULL"),
        ("deployed_version", "integer"),
        ("created_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
        ("position", "bigint NOT NULL UNIQUE"),
        # {"usd_per_day", "executions_per_minute"} while a budget is set (SetBudget).
        ("budget", "jsonb"),
        # {alias: version}: `production` (the deployed version) and those SetAlias set.
        ("aliases", "jsonb NOT NULL DEFAULT '{}'::jsonb"),
        # {alias: {"arms": [{"version", "percent"}], "guard": ...}}: traffic splits.
        ("splits", "jsonb NOT NULL DEFAULT '{}'::jsonb"),
        # {"min", "max"} of its feedback scores (RegisterProgram); NULL: 0..1.
        ("feedback_scale", "jsonb"),
        # {"judge", "alias", "sample_percent"} while its executions are judged online
        # (SetOnlineEvaluation); NULL: none is.
        ("online_evaluation", "jsonb"),
    ),
    key=("id",),
)

PROGRAM_VERSIONS = Table(
    "program_versions",
    (
        ("program_id", "text NOT NULL"),
        ("number", "integer NOT NULL"),
        ("source", "text NOT NULL"),
        ("instructions", "text"),
        ("state", "jsonb"),
        ("based_on", "integer"),
        ("optimization_id", "text"),
        ("optimizer", "text"),
        ("metric", "text"),
        ("config", "jsonb"),
        ("dataset_id", "text"),
        ("baseline_score", "double precision"),
        ("optimized_score", "double precision"),
        ("created_at", "timestamptz NOT NULL"),
        # JSON Schemas of the version's inputs and outputs, compiled once when the row is
        # written; NULL if the signature does not compile. `json`, not `jsonb`: it keeps
        # the key order compile_signature gives, so answers equal a fresh compile's.
        # Added after the first layout: `projections/upgrade.py` fills them in older schemas.
        ("input_schema", "json"),
        ("output_schema", "json"),
        # The dataset version the optimization that made it took its examples from; NULL
        # for other versions and those made before runs recorded it.
        ("dataset_version", "integer"),
    ),
    key=("program_id", "number"),
)

DATASETS = Table(
    "datasets",
    (
        ("id", "uuid"),
        ("dataset_id", "text NOT NULL UNIQUE"),
        ("name", "text NOT NULL"),
        ("dev_fraction", "double precision NOT NULL"),
        ("size", "integer NOT NULL"),
        ("train_size", "integer NOT NULL"),
        ("dev_size", "integer NOT NULL"),
        ("created_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
        ("position", "bigint NOT NULL UNIQUE"),
    ),
    key=("id",),
)

# Every example of every dataset, numbered from 1 in the order they were added:
# `dataset_version` is the dataset's version that added it (1: registered, then one per
# append), so version N of a dataset is its examples with dataset_version <= N;
# `source_execution_id` the execution it was promoted from (PromoteExecutions), else NULL.
DATASET_EXAMPLES = Table(
    "dataset_examples",
    (
        ("dataset_id", "text NOT NULL"),
        ("number", "integer NOT NULL"),
        ("split", "text NOT NULL"),
        ("example", "jsonb NOT NULL"),
        ("source_execution_id", "text"),
        ("dataset_version", "integer NOT NULL"),
        ("added_at", "timestamptz NOT NULL"),
        ("command_id", "text NOT NULL"),
        ("actor", "text"),
        ("position", "bigint NOT NULL"),
    ),
    key=("dataset_id", "number"),
)

# A corpus's documents stay in the event store (like a dataset's examples); `version` and
# `size` are copied from its latest event.
CORPORA = Table(
    "corpora",
    (
        ("id", "uuid"),
        ("corpus_id", "text NOT NULL UNIQUE"),
        ("name", "text NOT NULL"),
        ("version", "integer NOT NULL"),
        ("size", "integer NOT NULL"),
        ("created_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
        ("position", "bigint NOT NULL UNIQUE"),
    ),
    key=("id",),
)

EXECUTIONS = Table(
    "executions",
    (
        ("id", "uuid"),
        ("execution_id", "text NOT NULL UNIQUE"),
        ("program_id", "text NOT NULL"),
        ("version", "integer NOT NULL"),
        ("status", "text NOT NULL"),
        ("inputs", "jsonb NOT NULL"),
        ("outputs", "jsonb"),
        ("latency_ms", "double precision"),
        ("prompt_tokens", "integer"),
        ("completion_tokens", "integer"),
        ("total_tokens", "integer"),
        ("offline", "boolean NOT NULL"),
        ("error_code", "text"),
        ("error_message", "text"),
        ("error_details", "jsonb"),
        ("command_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("actor", "text"),
        ("requested_at", "timestamptz NOT NULL"),
        ("completed_at", "timestamptz"),
        ("position", "bigint NOT NULL UNIQUE"),
        # The execution's trace (runtime/trace.py) and, for a failure, the step that
        # raised; NULL for executions recorded before traces.
        ("trace", "jsonb"),
        ("failed_step", "text"),
        # US dollars (runtime.pricing); NULL when unknown, and for executions recorded
        # before costs were.
        ("cost_usd", "double precision"),
        # How the version was chosen (events.results.Route): alias, split arm, bucket,
        # reason; NULL for executions recorded before routes were.
        ("route", "jsonb"),
    ),
    key=("id",),
)

# Feedback on executions, one row each (RecordFeedback): `number` is its place among the
# execution's feedback. `program_id` and `version` are the execution's, copied so that
# stats by version read this table alone.
FEEDBACK = Table(
    "feedback",
    (
        ("execution_id", "text NOT NULL"),
        ("number", "integer NOT NULL"),
        ("program_id", "text NOT NULL"),
        ("version", "integer NOT NULL"),
        ("score", "double precision"),
        ("label", "text"),
        ("comment", "text"),
        ("corrected_outputs", "jsonb"),
        ("command_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("actor", "text"),
        ("recorded_at", "timestamptz NOT NULL"),
        ("position", "bigint NOT NULL UNIQUE"),
    ),
    key=("execution_id", "number"),
)

RUNS = Table(
    "runs",
    (
        ("id", "uuid"),
        ("kind", "text NOT NULL"),
        ("run_id", "text NOT NULL"),
        ("program_id", "text NOT NULL"),
        ("dataset_id", "text NOT NULL"),
        ("status", "text NOT NULL"),
        ("metric", "text NOT NULL"),
        ("optimizer", "text"),
        ("config", "jsonb"),
        ("base_version", "integer"),
        ("version", "integer"),
        ("version_created", "integer"),
        ("baseline_score", "double precision"),
        ("optimized_score", "double precision"),
        ("score", "double precision"),
        # Evaluations: examples whose LM call failed (None: not counted by that version).
        ("errored", "integer"),
        ("per_example", "jsonb"),
        ("step", "integer NOT NULL"),
        ("total", "integer NOT NULL"),
        ("best_score", "double precision"),
        ("error_code", "text"),
        ("error_message", "text"),
        ("cancel_reason", "text"),
        ("command_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("actor", "text"),
        ("requested_at", "timestamptz NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
        ("position", "bigint NOT NULL UNIQUE"),
        # Optimizations stopped over budget: the version kept from their best candidate
        # (NULL when none was, and for runs recorded before runs kept one).
        ("kept_version", "integer"),
        # The dataset version the run took its examples from, and what it ran with
        # (events.results.Provenance, once completed); NULL for runs recorded before.
        ("dataset_version", "integer"),
        ("provenance", "jsonb"),
    ),
    key=("id",),
    constraints=("UNIQUE (kind, run_id)",),
)

AUDIT_LOG = Table(
    "audit_log",
    (
        ("position", "bigint"),
        ("aggregate_kind", "text NOT NULL"),
        ("aggregate_id", "text NOT NULL"),
        ("aggregate_version", "integer NOT NULL"),
        ("program_id", "text"),
        ("event_type", "text NOT NULL"),
        ("occurred_at", "timestamptz NOT NULL"),
        ("actor", "text"),
        ("command_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("changes", "jsonb NOT NULL"),
    ),
    key=("position",),
)

# What served a program, one row per change (Program's Deployed, RolledBack, AliasSet,
# AliasRemoved and Deprecated), each with the whole serving state after it
# (`projections/serving.py`): the state at an instant is the last row at or before it.
# `alias` is the one alias the change moved (NULL when it moved several, as a deprecation
# may), `previous_version` and `version` where it pointed before and after (NULL: nowhere).
SERVING_CHANGES = Table(
    "serving_changes",
    (
        ("position", "bigint"),
        ("program_id", "text NOT NULL"),
        ("kind", "text NOT NULL"),
        ("alias", "text"),
        ("previous_version", "integer"),
        ("version", "integer"),
        ("state", "jsonb NOT NULL"),
        ("reason", "text"),
        ("actor", "text"),
        ("command_id", "text NOT NULL"),
        ("correlation_id", "text NOT NULL"),
        ("occurred_at", "timestamptz NOT NULL"),
    ),
    key=("position",),
)

# The read models, in creation order.
READ_MODELS: tuple[Table, ...] = (
    PROGRAMS,
    PROGRAM_VERSIONS,
    DATASETS,
    CORPORA,
    EXECUTIONS,
    FEEDBACK,
    RUNS,
    AUDIT_LOG,
    SERVING_CHANGES,
    DATASET_EXAMPLES,
)

# The read side's position in the event store (one row per projection name).
TRACKING = Table(
    "projection_tracking",
    (
        ("name", "text"),
        ("position", "bigint NOT NULL"),
        ("updated_at", "timestamptz NOT NULL"),
    ),
    key=("name",),
)
TRACKING_TABLE = TRACKING.name

# Events the projector could not apply: skipped, one row each with why (projector.py).
SKIPPED_EVENTS = Table(
    "projection_errors",
    (
        ("position", "bigint"),
        ("event_type", "text NOT NULL"),
        ("aggregate_id", "text NOT NULL"),
        ("error_type", "text NOT NULL"),
        ("message", "text NOT NULL"),
        ("recorded_at", "timestamptz NOT NULL"),
    ),
    key=("position",),
)

# Named `<table>_idx<n>` by their place in this tuple: append, never reorder, or read
# schemas made earlier would get their indexes twice under new names.
INDEXES: tuple[tuple[Table, str], ...] = (
    (PROGRAMS, "status, position"),
    (EXECUTIONS, "program_id, position"),
    (EXECUTIONS, "program_id, status, position"),
    (EXECUTIONS, "program_id, requested_at"),
    (RUNS, "kind, program_id, position"),
    (AUDIT_LOG, "program_id, position"),
    (FEEDBACK, "program_id, version"),
    (SERVING_CHANGES, "program_id, occurred_at"),
    (SERVING_CHANGES, "program_id, position"),
    (DATASET_EXAMPLES, "dataset_id, split, number"),
)
