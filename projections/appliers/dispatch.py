"""The dispatcher: every event class mapped to one handler of one applier, for one batch.

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


class BatchApplier:
    def __init__(self, conn: Connection, schema: str) -> None:
        rows = Rows(conn, schema)
        audit = AuditTrail(rows)
        self.executions = ExecutionsApplier(rows, audit)
        self.handlers: Handlers = {}
        for applier in (
            ProgramsApplier(rows, audit),
            DatasetsApplier(rows, audit),
            CorporaApplier(rows, audit),
            self.executions,
            RunsApplier(rows, audit),
        ):
            handlers = applier.handlers()
            twice = self.handlers.keys() & handlers.keys()
            if twice:
                raise ValueError(f"more than one handler for {sorted(map(str, twice))}")
            self.handlers.update(handlers)

    def handler(self, event_class: type) -> Handler | None:
        # Run's shared events reach here as subclasses (Optimization.Started is a
        # Run.Started), so walk the class's bases to the one mapped.
        for cls in event_class.__mro__:
            found = self.handlers.get(cls)
            if found is not None:
                return found
        return None

    def apply(self, event: Any, position: int) -> None:
        handler = self.handler(type(event))
        if handler is not None:
            handler(event, position)
        # An event without a handler has no read model: today only HandledCommand's, which
        # the event store skips undecoded. A unit test maps every other event class.

    def flush(self) -> None:
        self.executions.flush()
