"""The dispatcher: every event class mapped to the handlers of the appliers that project it.

An event may feed more than one read model (Program.Deployed changes the program's row and
adds a serving change), so each applier keeps its own table of handlers, and the
dispatcher hands the event to each applier's handler in turn, in the order listed below.

A `BatchApplier` lives for one batch: the batch's events are applied in store order and
the caller commits them with the tracking position, after `flush` has written the
execution rows kept in memory.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from dspyops.projections.appliers.audit import AuditTrail
from dspyops.projections.appliers.corpora import CorporaApplier
from dspyops.projections.appliers.datasets import DatasetsApplier
from dspyops.projections.appliers.events import Handler, Handlers
from dspyops.projections.appliers.executions import ExecutionsApplier
from dspyops.projections.appliers.programs import ProgramsApplier
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.appliers.runs import RunsApplier
from dspyops.projections.appliers.serving import ServingApplier


class BatchApplier:
    def __init__(self, conn: Connection, schema: str) -> None:
        rows = Rows(conn, schema)
        audit = AuditTrail(rows)
        self.executions = ExecutionsApplier(rows, audit)
        # Programs before serving: a serving change reads the program's row for its id.
        self.tables: list[Handlers] = [
            applier.handlers()
            for applier in (
                ProgramsApplier(rows, audit),
                ServingApplier(rows),
                DatasetsApplier(rows, audit),
                CorporaApplier(rows, audit),
                self.executions,
                RunsApplier(rows, audit),
            )
        ]
        self._found: dict[type, list[Handler]] = {}

    def handlers(self, event_class: type) -> list[Handler]:
        """Each applier's handler for `event_class`, in the appliers' order."""
        found = self._found.get(event_class)
        if found is None:
            found = [h for table in self.tables if (h := _lookup(table, event_class))]
            self._found[event_class] = found
        return found

    def apply(self, event: Any, position: int) -> None:
        for handler in self.handlers(type(event)):
            handler(event, position)
        # An event without a handler has no read model: today only HandledCommand's, which
        # the event store skips undecoded. A unit test maps every other event class.

    def flush(self) -> None:
        self.executions.flush()


def _lookup(table: Handlers, event_class: type) -> Handler | None:
    # Run's shared events reach here as subclasses (Optimization.Started is a
    # Run.Started), so walk the class's bases to the one mapped.
    for cls in event_class.__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    return None
