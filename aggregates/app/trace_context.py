"""The W3C trace context of the command that records an event, stored with the event.

The outbox relay publishes events later and in another process, and the projector applies
them later still: the context they carry on (so a consumer of the events topic continues
the command's trace, and a projector batch links to it) must be in the event store. It is
kept in the stored event's state under ``traceparent`` (and ``tracestate`` when the
command had one), set on the event object just before it is saved. It is not a field of
any event class, so no class changes version and no stored event changes: an event
recorded before this, or by a command that came without a context while tracing was off,
simply has none (``trace_context_of`` answers ``(None, None)``). eventsourcing keeps the
key through storing and loading (its mapper stores the event's ``__dict__`` and restores
it as it was) and hands each ``@event`` method only the parameters it names, so no
aggregate sees it.

Which events get which context: the worker says, per command, what its messages carry on
(``carrying``: the command's span when tracing is on, else the command's own
``traceparent``), and ``DspyOps.save`` stamps every pending event whose ``command_id`` is
one of those commands'. The context travels with the caller's ``contextvars`` (the
worker's store calls hand it to their thread), so a group commit of many executions
states all of theirs (``carrying(*contexts)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from dspyops.aggregates.app.context import CommandContext

TRACEPARENT_KEY = "traceparent"
TRACESTATE_KEY = "tracestate"

# command id -> (traceparent, tracestate) of the commands whose events are being saved.
Carried = Mapping[str, tuple[str, str | None]]
_EMPTY: Carried = {}
_carried: ContextVar[Carried] = ContextVar("dspyops_carried_traces", default=_EMPTY)


def carried() -> Carried:
    """The trace contexts stated in this context (empty when none)."""
    return _carried.get()


@contextmanager
def carrying(*contexts: CommandContext) -> Iterator[None]:
    """Events the given commands record inside the block keep their trace contexts."""
    traced = {c.command_id: (c.traceparent, c.tracestate) for c in contexts if c.traceparent}
    with carrying_all(traced):
        yield


@contextmanager
def carrying_all(traced: Carried) -> Iterator[None]:
    if not traced:
        yield
        return
    token = _carried.set({**_carried.get(), **traced})
    try:
        yield
    finally:
        _carried.reset(token)


def stamp(events: Iterable[Any]) -> None:
    """Give each event the trace context of its command, if that one is carried."""
    traced = _carried.get()
    if not traced:
        return
    for event in events:
        state = vars(event)
        found = traced.get(state.get("command_id"))
        if found is None or TRACEPARENT_KEY in state:
            continue
        # Events are frozen dataclasses: set as eventsourcing's mapper does on load.
        object.__setattr__(event, TRACEPARENT_KEY, found[0])
        if found[1]:
            object.__setattr__(event, TRACESTATE_KEY, found[1])


def trace_context_of(event: Any) -> tuple[str | None, str | None]:
    """The (traceparent, tracestate) stored with ``event``; (None, None) if it has none."""
    state = vars(event)
    traceparent = state.get(TRACEPARENT_KEY)
    tracestate = state.get(TRACESTATE_KEY)
    return (
        traceparent if isinstance(traceparent, str) else None,
        tracestate if isinstance(tracestate, str) else None,
    )
