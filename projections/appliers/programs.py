"""The programs and program_versions read models, from Program's events.

Events carry the facts they result in (the program's `status`, the `version` created), and
the rows copy them: the lifecycle rules live in the aggregate alone. The one exception is a
v1 event that did not record its version (see `_created_version`).

Each version row also holds the JSON Schemas of its inputs and outputs, compiled once
here so that `GET /programs/{id}/schema` reads them instead of compiling per request.

This module is long because every Program event has its handler here, one short method
each, beside the row and audit helpers they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dspyops.aggregates.program import PRODUCTION, Program
from dspyops.projections.appliers.audit import AuditTrail, changes
from dspyops.projections.appliers.events import (
    Handlers,
    ProgramRolledBack,
    Recorded,
    event_class,
)
from dspyops.projections.appliers.rows import Row, Rows
from dspyops.projections.read_schema import PROGRAM_VERSIONS, PROGRAMS
from dspyops.signatures import SignatureError, compile_signature

# Program fields an audit entry shows; `lm` names a server-side profile and stays out.
AUDITED = (
    "name",
    "signature",
    "module",
    "instructions",
    "description",
    "field_descriptions",
    "status",
    "latest_version",
    "deployed_version",
    "budget",
)


class ProgramsApplier:
    def __init__(self, rows: Rows, audit: AuditTrail) -> None:
        self.rows = rows
        self.audit = audit

    def handlers(self) -> Handlers:
        return {
            Program.Registered: self.registered,
            Program.TrainingStarted: self.training_started,
            Program.Updated: self.updated,
            Program.Optimized: self.optimized,
            Program.Deployed: self.deployed,
            event_class(Program, "RolledBack"): self.rolled_back,
            Program.Deprecated: self.deprecated,
            Program.BudgetSet: self.budget_set,
            Program.OnlineEvaluationSet: self.online_evaluation_set,
            Program.AliasSet: self.alias_set,
            Program.AliasRemoved: self.alias_removed,
            Program.TrafficSplitSet: self.traffic_split_set,
            Program.SplitArmRemoved: self.split_arm_removed,
            Program.DeploymentRefused: self.deployment_refused,
            Program.TrafficSplitRefused: self.traffic_split_refused,
        }

    def registered(self, e: Program.Registered, position: int) -> None:
        row = {
            "id": e.originator_id,
            "program_id": e.program_id,
            "name": e.name,
            "signature": e.signature,
            "module": e.module,
            "instructions": e.instructions,
            "description": e.description,
            "field_descriptions": dict(e.field_descriptions),
            "status": e.status,
            "latest_version": e.version,
            "deployed_version": None,
            "budget": None,
            "aliases": {},
            "splits": {},
            "feedback_scale": e.feedback_scale,
            "online_evaluation": None,
            "created_at": e.timestamp,
            "updated_at": e.timestamp,
            "position": position,
        }
        self.rows.insert(PROGRAMS, row)
        self._add_version(
            row,
            e.timestamp,
            number=e.version,
            source="registered",
            instructions=e.instructions,
        )
        after = {name: row[name] for name in AUDITED}
        self.audit.record(
            e,
            position,
            kind="program",
            aggregate_id=e.program_id,
            program_id=e.program_id,
            changed=changes(None, after),
        )

    def training_started(self, e: Program.TrainingStarted, position: int) -> None:
        self._change(e, position, status=e.status)

    def updated(self, e: Program.Updated, position: int) -> None:
        after: Row = {}
        if e.description is not None:
            after["description"] = e.description
        if e.instructions is None:
            self._change(e, position, **after)
            return
        before = self._program(e)
        latest = before["latest_version"]
        # v1 events did not record the version: see _created_version.
        number = _created_version(e.version, before)
        previous = self.rows.select(
            PROGRAM_VERSIONS, {"program_id": before["program_id"], "number": latest}
        )
        self._add_version(
            before,
            e.timestamp,
            number=number,
            source="updated",
            instructions=e.instructions,
            state=previous["state"],
            based_on=latest,
        )
        self._change(
            e,
            position,
            before=before,
            **after,
            instructions=e.instructions,
            latest_version=number,
        )

    def optimized(self, e: Program.Optimized, position: int) -> None:
        before = self._program(e)
        latest = before["latest_version"]
        # v1 events did not record the version: see _created_version.
        number = _created_version(e.version, before)
        self._add_version(
            before,
            e.timestamp,
            number=number,
            source="optimized",
            instructions=before["instructions"],
            state=e.state,
            based_on=latest,
            optimization_id=e.optimization_id,
            optimizer=e.optimizer,
            metric=e.metric,
            config=e.config,
            dataset_id=e.dataset_id,
            dataset_version=e.dataset_version,
            baseline_score=e.baseline_score,
            optimized_score=e.optimized_score,
        )
        self._change(e, position, before=before, status=e.status, latest_version=number)

    # `production` is the deployed version: its move shows as `deployed_version` in the
    # audit entry (as before aliases), and the row's aliases follow it.
    def deployed(self, e: Program.Deployed, position: int) -> None:
        before = self._program(e)
        aliases = {**before["aliases"], PRODUCTION: e.version}
        self._change(
            e,
            position,
            before=before,
            unaudited={"aliases": aliases},
            status=e.status,
            deployed_version=e.version,
            **_split_ended(before, PRODUCTION),
        )

    def rolled_back(self, e: ProgramRolledBack, position: int) -> None:
        before = self._program(e)
        aliases = {**before["aliases"], PRODUCTION: e.version}
        self._change(
            e,
            position,
            before=before,
            unaudited={"aliases": aliases},
            deployed_version=e.version,
            **_split_ended(before, PRODUCTION),
        )

    def deprecated(self, e: Program.Deprecated, position: int) -> None:
        self._change(e, position, status=e.status)

    def budget_set(self, e: Program.BudgetSet, position: int) -> None:
        limits = {"usd_per_day": e.usd_per_day, "executions_per_minute": e.executions_per_minute}
        budget = limits if any(v is not None for v in limits.values()) else None
        self._change(e, position, noted=_reason(e.reason), budget=budget)

    def online_evaluation_set(self, e: Program.OnlineEvaluationSet, position: int) -> None:
        """The judge and the sample, in the row's `online_evaluation` and the audit entry
        (noted as it was before the column existed: projections/upgrade.py fills the
        column of an earlier layout's rows from those entries)."""
        judged = None
        if e.judge is not None:
            judged = {"judge": e.judge, "alias": e.alias, "sample_percent": e.sample_percent}
        noted = {"online_evaluation": {"before": None, "after": judged}}
        self._change(
            e,
            position,
            noted={**noted, **_reason(e.reason)},
            unaudited={"online_evaluation": judged},
        )

    def alias_set(self, e: Program.AliasSet, position: int) -> None:
        before = self._program(e)
        aliases = {**before["aliases"], e.alias: e.version}
        self._change(
            e,
            position,
            before=before,
            noted=_reason(e.reason),
            aliases=aliases,
            **_split_ended(before, e.alias),
        )

    def alias_removed(self, e: Program.AliasRemoved, position: int) -> None:
        before = self._program(e)
        aliases = {k: v for k, v in before["aliases"].items() if k != e.alias}
        self._change(
            e,
            position,
            before=before,
            noted=_reason(e.reason),
            aliases=aliases,
            **_split_ended(before, e.alias),
        )

    def traffic_split_set(self, e: Program.TrafficSplitSet, position: int) -> None:
        before = self._program(e)
        splits = {k: v for k, v in before["splits"].items() if k != e.alias}
        if e.arms:
            splits[e.alias] = {"arms": list(e.arms), "guard": e.guard}
        self._change(e, position, before=before, noted=_reason(e.reason), splits=splits)

    def split_arm_removed(self, e: Program.SplitArmRemoved, position: int) -> None:
        before = self._program(e)
        splits = {k: v for k, v in before["splits"].items() if k != e.alias}
        if len(e.arms) > 1:  # else only the control arm is left: the split ended
            splits[e.alias] = {**before["splits"][e.alias], "arms": list(e.arms)}
        guard = {"failed": e.failed, "window": e.window, "max_error_rate": e.max_error_rate}
        noted = {"guard": {"before": None, "after": {"removed_version": e.version, **guard}}}
        self._change(e, position, before=before, noted=noted, splits=splits)

    def deployment_refused(self, e: Program.DeploymentRefused, position: int) -> None:
        """Nothing about the program changed: the audit entry alone says what was refused
        and why, with what the gate measured."""
        refused = {"version": e.version, "code": e.code, "message": e.message, "gate": e.gate}
        self._refused(e, position, "deployment_refused", refused)

    def traffic_split_refused(self, e: Program.TrafficSplitRefused, position: int) -> None:
        """As a refused deployment: an audit entry alone, the split asked for and why."""
        refused = {
            "alias": e.alias,
            "arms": list(e.arms),
            "current_arms": list(e.current_arms),
            "code": e.code,
            "message": e.message,
            "gates": list(e.gates),
        }
        self._refused(e, position, "traffic_split_refused", refused)

    def _refused(self, e: Recorded, position: int, what: str, refused: Row) -> None:
        program_id = self._program(e)["program_id"]
        self.audit.record(
            e,
            position,
            kind="program",
            aggregate_id=program_id,
            program_id=program_id,
            changed={what: {"before": None, "after": refused}},
        )

    def _program(self, e: Recorded) -> Row:
        return self.rows.select(PROGRAMS, {"id": e.originator_id})

    def _change(
        self,
        e: Recorded,
        position: int,
        before: Row | None = None,
        noted: Row | None = None,
        unaudited: Row | None = None,
        **after: Any,
    ) -> None:
        """Update the program's row with `after` (and `unaudited`) and audit what changed
        in `after` (and `noted`)."""
        if before is None:
            before = self._program(e)
        update = {**after, **(unaudited or {}), "updated_at": e.timestamp}
        self.rows.update(PROGRAMS, {"id": e.originator_id}, update)
        program_id = before["program_id"]
        self.audit.record(
            e,
            position,
            kind="program",
            aggregate_id=program_id,
            program_id=program_id,
            changed={**changes(before, after), **(noted or {})},
        )

    def _add_version(
        self, program: Row, at: datetime, *, number: int, source: str, **fields: Any
    ) -> None:
        row: Row = dict.fromkeys(PROGRAM_VERSIONS.names)
        row.update(
            program_id=program["program_id"], number=number, source=source, created_at=at, **fields
        )
        # A program's signature and field descriptions never change after registration.
        row.update(
            signature_schemas(
                program["signature"], row["instructions"], program["field_descriptions"]
            )
        )
        self.rows.insert(PROGRAM_VERSIONS, row)


def _split_ended(program: Row, alias: str) -> Row:
    """Moving an alias ends its split (as in the aggregate): `splits` without it."""
    if alias not in program["splits"]:
        return {}
    return {"splits": {k: v for k, v in program["splits"].items() if k != alias}}


def _reason(reason: str | None) -> Row:
    """The reason is the change's, not the program's: kept in the audit entry only."""
    return {"reason": {"before": None, "after": reason}} if reason is not None else {}


def _created_version(recorded: int | None, program: Row) -> int:
    """The version an Updated (with instructions) or Optimized event created.

    v2 events record it. v1 events did not (their upcast leaves None): then, and only
    then, it was the program's latest version + 1, as the aggregate numbered it.
    """
    if recorded is not None:
        return recorded
    latest: int = program["latest_version"]
    return latest + 1


def signature_schemas(
    signature: str, instructions: str | None, descriptions: Mapping[str, str]
) -> Row:
    """A version's `input_schema` and `output_schema` columns: the JSON Schemas
    `compile_signature` gives, or None for both if the signature does not compile."""
    try:
        compiled = compile_signature(
            signature, instructions=instructions, descriptions=descriptions
        )
    except SignatureError:
        return {"input_schema": None, "output_schema": None}
    return {
        "input_schema": compiled.input_json_schema(),
        "output_schema": compiled.output_json_schema(),
    }
