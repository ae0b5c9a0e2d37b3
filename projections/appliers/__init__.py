"""One applier per read model, and the dispatcher that hands each event to their handlers.

`programs` (programs and program_versions), `serving` (serving_changes), `datasets`,
`corpora`, `executions`, `runs` and `audit` (the audit trail, written by the others) each own
their tables; `dispatch.BatchApplier` hands every event to the typed handler of each applier
that projects it and applies a batch in store order.
"""

from dspyops.projections.appliers.dispatch import BatchApplier

__all__ = ["BatchApplier"]
