"""One applier per read model, and the dispatcher that hands each event to its handler.

`programs` (programs and program_versions), `datasets`, `corpora`, `executions`, `runs` and
`audit` (the audit trail, written by the others) each own their tables; `dispatch.BatchApplier`
maps every event class to one typed handler and applies a batch in store order.
"""

from dspyops.projections.appliers.dispatch import BatchApplier

__all__ = ["BatchApplier"]
