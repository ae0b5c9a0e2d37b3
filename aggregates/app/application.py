"""DspyOps: the eventsourcing Application every use case reads and writes through.

It holds what all of them share and nothing command-specific: retry on an
optimistic-concurrency conflict (`attempt`), the stored terminal outcome of each command
(`record`, `stored_outcome`), loading aggregates (`find`, `replay` and one loader per
kind) and the checks the runtime injects (`checks`). The use cases are plain functions in
this package (`programs`, `datasets`, `executions`, `optimizations`, `evaluations`),
reached through the one command table in `handlers`.

Every command ends in exactly one stored `HandledCommand` holding its terminal outcome,
saved in the same transaction as the aggregates it changed. A redelivered command finds
that record and gets the same outcome back; nothing new is recorded.

The class keeps its name: eventsourcing names the tables after it (`dspyops_events`).

This module is long because the application's shared machinery (conflict retries, stored
outcomes, and the reads every command makes, batched or not) belongs in one class.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import AggregateRecorder, RecordConflictError, StoredEvent
from eventsourcing.utils import EnvType

from dspyops.aggregates.app.budgets import InMemoryLedger, SpendLedger
from dspyops.aggregates.app.checks import Checks
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.app.outcomes import handled_record, id_reused, rejected
from dspyops.aggregates.app.trace_context import stamp
from dspyops.aggregates.corpus import Corpus
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.errors import DomainError, NotFound, Unrecorded
from dspyops.aggregates.evaluation import Evaluation
from dspyops.aggregates.execution import Execution
from dspyops.aggregates.handled import HandledCommand
from dspyops.aggregates.ids import (
    command_uuid,
    corpus_uuid,
    dataset_uuid,
    evaluation_uuid,
    execution_uuid,
    optimization_uuid,
    program_uuid,
)
from dspyops.aggregates.legacy_topics import register_legacy_topics
from dspyops.aggregates.optimization import Optimization
from dspyops.aggregates.program import Program, ProgramVersion
from dspyops.signatures import (
    CompiledSignature,
    SignatureError,
    ValidationFailed,
    compile_signature,
)

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

# What a command can get wrong: each becomes a CommandRejected outcome.
REJECTIONS = (DomainError, SignatureError, ValidationFailed)


# Reads the stored events of many aggregates (absent ones map to no events), ideally in one
# round trip: the composition root gives PostgreSQL's (dspyops.event_reads).
SelectMany = Callable[[AggregateRecorder, Sequence[UUID]], dict[UUID, list[StoredEvent]]]


def select_one_by_one(
    recorder: AggregateRecorder, ids: Sequence[UUID]
) -> dict[UUID, list[StoredEvent]]:
    """Any recorder's: one query per aggregate (the in-memory store's is a dict lookup)."""
    return {aggregate_id: list(recorder.select_events(aggregate_id)) for aggregate_id in ids}


class ConflictsExhausted(RuntimeError):
    """Concurrent writers kept winning; the command was not applied and may be retried."""


class DspyOps(Application):
    # Programs live long and collect many events; executions and runs stay short.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Program: 50}
    # Retries after an optimistic-concurrency conflict before giving up.
    max_attempts = 8
    # Programs are read on every execution: keep them cached and fast-forward on read.
    default_cache_maxsize = "1000"

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        checks: Checks | None = None,
        ledger: SpendLedger | None = None,
        select_many: SelectMany = select_one_by_one,
    ) -> None:
        # Events stored by earlier layouts must load: their old topics resolve first.
        register_legacy_topics()
        env = dict(env or {})
        if self.AGGREGATE_CACHE_MAXSIZE not in os.environ:
            env.setdefault(self.AGGREGATE_CACHE_MAXSIZE, self.default_cache_maxsize)
        super().__init__(env)
        self.checks = checks or Checks()
        # What budgeted programs' executions spent, shared by every worker (PostgreSQL's
        # from the composition root; one process's own for the in-memory store).
        self.ledger: SpendLedger = ledger or InMemoryLedger()
        # Optimistic-concurrency conflicts met and retried: a health signal for workers.
        self.conflicts = 0
        self._select_many = select_many
        # Per store thread, while it handles a batch of commands (`reading_ahead`): the
        # events read ahead for `replay`, and the read-only aggregates `find` gave.
        self._batch = threading.local()

    def close(self) -> None:
        self.ledger.close()
        super().close()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """eventsourcing's save; each event keeps its command's trace context when the
        caller carries it (`trace_context`)."""
        stamp(e for o in objs if isinstance(o, Aggregate) for e in o.pending_events)
        return super().save(*objs, **kwargs)

    # --- commands -----------------------------------------------------------------

    def attempt(
        self,
        ctx: CommandContext,
        work: Callable[[bool], T],
        subject: str,
        *,
        trust_first: bool = False,
        foreign_ok: bool = False,
    ) -> T | Outcome:
        """Run `work` until it saves without conflict; a domain error is stored as rejected.

        After a conflict the stored outcome is looked up again: a conflict on the
        HandledCommand means another worker finished this command first. With
        `trust_first`, the first try skips that lookup (the caller just made it) and
        `work(True)` may skip its own reads: anything stale shows up as a conflict. With
        `foreign_ok`, an id another command took is no reason to stop: `work` (ending a
        run its command started) checks `owns_id` and stores no outcome then.
        """
        for number in range(self.max_attempts):
            first = trust_first and number == 0
            stored = None if first else self._stored_for(ctx, subject, foreign_ok)
            if stored is not None:
                return stored
            try:
                return work(first)
            except RecordConflictError:
                self.conflicts += 1
                continue
            except Unrecorded as exc:
                # An id reused (its stored outcome, to come, is the first command's) or a
                # producer over its rate limit: answered, nothing recorded.
                return rejected(ctx, exc, subject)
            except REJECTIONS as exc:
                try:
                    return self.record(ctx, rejected(ctx, exc, subject))
                except RecordConflictError:
                    self.conflicts += 1
                    continue
        raise ConflictsExhausted(f"command {ctx.command_id!r}: {self.max_attempts} conflicts")

    def record(self, ctx: CommandContext, outcome: Outcome, *changed: Aggregate) -> Outcome:
        """Save the changed aggregates and the command's outcome in one transaction.

        A context that does not own its id (`store_outcome` false: another command took
        it while this one's run was going) saves the aggregates alone.
        """
        handled = [handled_record(ctx, outcome)] if ctx.store_outcome else []
        self.save(*changed, *handled)
        self._cache_programs(changed)
        return outcome

    def _cache_programs(self, saved: tuple[Aggregate, ...]) -> None:
        """Programs just saved replace their cached copies.

        Executions read a program from the cache and, while another thread fast-forwards
        it, use it as it is (`find`): right after a change (a budget, a deploy) 200
        executions planned at once would otherwise see the program as it was before. On
        this worker they now see the change at once; other workers see it at their next
        read of the program.
        """
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in saved:
            if isinstance(aggregate, Program):
                cache.put(aggregate.id, aggregate)

    def owns_id(self, ctx: CommandContext) -> bool:
        """Whether no other command has stored an outcome under this command's id."""
        handled = self.replay(HandledCommand, command_uuid(ctx.command_id))
        return handled is None or handled.same_command(ctx.command_type, ctx.payload_digest)

    def _stored_for(
        self, ctx: CommandContext, subject: str, foreign_ok: bool = False
    ) -> Outcome | None:
        """The stored outcome of this command; a rejection if its id was used by another."""
        handled = self.replay(HandledCommand, command_uuid(ctx.command_id))
        if handled is None:
            return None
        if not handled.same_command(ctx.command_type, ctx.payload_digest):
            return None if foreign_ok else rejected(ctx, id_reused(ctx), subject)
        return Outcome(result_type=handled.result_type, subject=handled.subject, data=handled.data)

    def stored_outcome(self, command_id: str) -> Outcome | None:
        handled = self.replay(HandledCommand, command_uuid(command_id))
        if handled is None:
            return None
        return Outcome(result_type=handled.result_type, subject=handled.subject, data=handled.data)

    # --- reading aggregates -----------------------------------------------------------

    @contextmanager
    def reading_ahead(self, aggregate_ids: Iterable[UUID]) -> Iterator[None]:
        """For commands handled together in this thread: the small aggregates they look up
        first (`replay`) are read in one round trip now, and each read-only `find` of the
        same aggregate (a hot program) is made once for all of them.

        Each event list read ahead serves one `replay` of its aggregate; any later one (a
        retry after a conflict) reads the store again. A read-only `find` may already be
        one read behind (see `find`); within a batch it stays so: anything stale for a
        write shows up as a conflict, as before.
        """
        ids = list(dict.fromkeys(aggregate_ids))
        self._batch.events = self._select_many(self.recorder, ids) if ids else {}
        self._batch.found = {}
        try:
            yield
        finally:
            del self._batch.events, self._batch.found

    def find(self, cls: type[A], aggregate_id: UUID, *, copy: bool = True) -> A | None:
        """The aggregate or None; `copy=False` shares the cached object: read it only.

        A read-only lookup does not queue behind another thread that is already
        fast-forwarding the same cached aggregate (a hot program is read by every
        execution): it uses the cached state, at most that one read behind. Writes take
        copies and fast-forward fully; anything stale there shows up as a conflict.
        """
        found: dict[UUID, Aggregate] | None = None if copy else getattr(self._batch, "found", None)
        aggregate: Aggregate | None = None if found is None else found.get(aggregate_id)
        if aggregate is None:
            try:
                aggregate = self.repository.get(
                    aggregate_id, deepcopy_from_cache=copy, fastforward_skipping=not copy
                )
            except AggregateNotFoundError:
                return None
            if found is not None:
                found[aggregate_id] = aggregate
        if not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def replay(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate from its events in one query, skipping the snapshot store and cache.

        For the small aggregates looked up on every command (handled records, executions,
        runs), which are mostly absent: a miss through the repository costs two queries.
        """
        ahead: dict[UUID, list[StoredEvent]] | None = getattr(self._batch, "events", None)
        stored = None if ahead is None else ahead.pop(aggregate_id, None)
        events = (
            self.events.get(aggregate_id)
            if stored is None
            else (self.mapper.to_domain_event(s) for s in stored)
        )
        aggregate: Aggregate | None = project_aggregate(None, events)
        if aggregate is not None and not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    def program(self, program_id: str, *, copy: bool = True) -> Program:
        program = self.find(Program, program_uuid(program_id), copy=copy)
        if program is None:
            raise NotFound(f"no program {program_id!r}", loc=["program_id"])
        return program

    def dataset(self, dataset_id: str, *, copy: bool = True) -> Dataset:
        dataset = self.find(Dataset, dataset_uuid(dataset_id), copy=copy)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}", loc=["dataset_id"])
        return dataset

    def dataset_at(self, dataset_id: str, version: int) -> Dataset:
        """The dataset as of `version` (aggregates/dataset.py: registered is 1, each append one
        more). NotFound if either is not there."""
        return self.at_version(Dataset, dataset_uuid(dataset_id), version, "dataset", dataset_id)

    def at_version(self, cls: type[A], aggregate_id: UUID, version: int, kind: str, name: str) -> A:
        """The `kind` aggregate `name` as of `version`, replayed from its events up to there,
        never the cached latest one, which another thread may be moving forward. NotFound
        (loc `<kind>_id`, or `version` for a version it does not have)."""
        missing = NotFound(f"{kind} {name!r} has no version {version}", loc=["version"])
        if version < 1:
            raise missing
        try:
            found: object = self.repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(f"no {kind} {name!r}", loc=[f"{kind}_id"]) from None
        if not isinstance(found, cls):
            raise TypeError(f"{name!r} names a {type(found).__name__}, not a {cls.__name__}")
        if found.version != version:
            raise missing
        return found

    def corpus(self, corpus_id: str, *, copy: bool = True) -> Corpus:
        """The latest version of the corpus; `copy=False` shares the cached one: read it only."""
        corpus = self.find(Corpus, corpus_uuid(corpus_id), copy=copy)
        if corpus is None:
            raise NotFound(f"no corpus {corpus_id!r}", loc=["corpus_id"])
        return corpus

    def optimization(self, optimization_id: str) -> Optimization:
        run = self.replay(Optimization, optimization_uuid(optimization_id))
        if run is None:
            raise NotFound(f"no optimization {optimization_id!r}", loc=["optimization_id"])
        return run

    def evaluation(self, evaluation_id: str) -> Evaluation:
        run = self.replay(Evaluation, evaluation_uuid(evaluation_id))
        if run is None:
            raise NotFound(f"no evaluation {evaluation_id!r}", loc=["evaluation_id"])
        return run

    def corpus_exists(self, corpus_id: str) -> bool:
        return self.find(Corpus, corpus_uuid(corpus_id), copy=False) is not None

    def execution(self, execution_id: str) -> Execution | None:
        return self.replay(Execution, execution_uuid(execution_id))

    # --- signatures -------------------------------------------------------------------

    def compiled(self, program: Program, version: ProgramVersion) -> CompiledSignature:
        # compile_signature caches by its arguments, so this is cheap per execution.
        return compile_signature(
            program.signature,
            instructions=version["instructions"],
            descriptions=program.field_descriptions,
        )
