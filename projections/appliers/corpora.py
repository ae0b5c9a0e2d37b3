"""The corpora read model: name, version and size (the documents stay in the event store).

Every corpus event carries the version it made and the size after it: copied, never
re-derived. Each event also gets an audit entry with what changed.
"""

from __future__ import annotations

from dspyops.aggregates.corpus import Corpus
from dspyops.projections.appliers.audit import AuditTrail, changes
from dspyops.projections.appliers.events import (
    CorpusRegistered,
    DocumentsChanged,
    Handlers,
    event_class,
)
from dspyops.projections.appliers.rows import Rows
from dspyops.projections.read_schema import CORPORA


class CorporaApplier:
    def __init__(self, rows: Rows, audit: AuditTrail) -> None:
        self.rows = rows
        self.audit = audit

    def handlers(self) -> Handlers:
        return {
            event_class(Corpus, "Registered"): self.registered,
            event_class(Corpus, "DocumentsAppended"): self.documents_changed,
            event_class(Corpus, "DocumentsRemoved"): self.documents_changed,
        }

    def registered(self, e: CorpusRegistered, position: int) -> None:
        after = {"name": e.name, "version": e.version, "size": e.size}
        self.rows.insert(
            CORPORA,
            {
                "id": e.originator_id,
                "corpus_id": e.corpus_id,
                **after,
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
                "position": position,
            },
        )
        self.audit.record(
            e,
            position,
            kind="corpus",
            aggregate_id=e.corpus_id,
            program_id=None,
            changed=changes(None, after),
        )

    def documents_changed(self, e: DocumentsChanged, position: int) -> None:
        before = self.rows.select(CORPORA, {"id": e.originator_id})
        after = {"version": e.version, "size": e.size}
        self.rows.update(CORPORA, {"id": e.originator_id}, {**after, "updated_at": e.timestamp})
        self.audit.record(
            e,
            position,
            kind="corpus",
            aggregate_id=before["corpus_id"],
            program_id=None,
            changed=changes(before, after),
        )
