"""Corpus commands (register, append and remove documents) and what a worker reads of a
corpus: its version for a plan, and the documents as of that version.

A plan names each corpus its steps search at one version (`searched_corpora` at
planning time; `corpus_ref` names one at a chosen version), so an execution
retrieves from the documents it was planned with even while documents are appended;
`document_texts` is the loader a `runtime.retrieval.IndexCache` builds indexes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from dspyops.aggregates.app.application import DspyOps
from dspyops.aggregates.app.context import CommandContext, Outcome
from dspyops.aggregates.corpus import Corpus, Document
from dspyops.aggregates.errors import AlreadyExists, NotFound
from dspyops.aggregates.ids import corpus_uuid
from dspyops.aggregates.program import Program
from dspyops.events import commands
from dspyops.events.commands import AppendDocuments, RegisterCorpus, RemoveDocuments
from dspyops.events.results import (
    CorpusRegistered,
    CorpusResult,
    DocumentsAppended,
    DocumentsRemoved,
)


class CorpusRef(BaseModel):
    """A corpus at one version: what a plan names, and (as a pair) its index's cache key."""

    model_config = ConfigDict(frozen=True)

    corpus_id: str
    version: int


# --- commands ------------------------------------------------------------------------


def register_corpus(app: DspyOps, cmd: RegisterCorpus, ctx: CommandContext) -> Outcome:
    corpus_id = cmd.corpus_id or ctx.command_id
    if app.find(Corpus, corpus_uuid(corpus_id), copy=False) is not None:
        raise AlreadyExists(f"corpus {corpus_id!r} exists", loc=["corpus_id"])
    corpus = Corpus.register(
        corpus_id=corpus_id, name=cmd.name, documents=as_documents(cmd.documents), **ctx.meta()
    )
    return app.record(ctx, _result(CorpusRegistered, corpus), corpus)


def append_documents(app: DspyOps, cmd: AppendDocuments, ctx: CommandContext) -> Outcome:
    corpus = app.corpus(cmd.corpus_id)
    corpus.append(as_documents(cmd.documents), **ctx.meta())
    result = _result(DocumentsAppended, corpus, appended=len(cmd.documents))
    return app.record(ctx, result, corpus)


def remove_documents(app: DspyOps, cmd: RemoveDocuments, ctx: CommandContext) -> Outcome:
    corpus = app.corpus(cmd.corpus_id)
    corpus.remove(list(cmd.document_ids), **ctx.meta())
    result = _result(DocumentsRemoved, corpus, removed=len(cmd.document_ids))
    return app.record(ctx, result, corpus)


def as_documents(documents: Sequence[commands.Document]) -> list[Document]:
    """The wire documents as the corpus stores them (`metadata` only when given)."""
    stored: list[Document] = []
    for document in documents:
        item: Document = {"id": document.id, "text": document.text}
        if document.metadata is not None:
            item["metadata"] = document.metadata
        stored.append(item)
    return stored


def _result(cls: type[CorpusResult], corpus: Corpus, **extra: Any) -> Outcome:
    result = cls(
        corpus_id=corpus.corpus_id,
        name=corpus.name,
        version=corpus.version,
        size=corpus.size,
        **extra,
    )
    return Outcome.of(result, corpus.corpus_id)


# --- reading a corpus for a plan and a worker ----------------------------------------


def corpus_ref(app: DspyOps, corpus_id: str, version: int | None = None) -> CorpusRef:
    """The corpus at `version` (default: its latest) for a plan; NotFound if either is not
    there (`loc` `["corpus_id"]` or `["version"]`)."""
    latest = app.corpus(corpus_id, copy=False).version
    if version is None:
        version = latest
    elif not 1 <= version <= latest:
        raise NotFound(
            f"corpus {corpus_id!r} has no version {version} (latest {latest})", loc=["version"]
        )
    return CorpusRef(corpus_id=corpus_id, version=version)


def searched_corpora(app: DspyOps, program: Program) -> dict[str, int]:
    """The corpora a program's steps search, each at its latest version: what a plan
    records, so its execution searches the documents it was planned with."""
    return corpus_versions(
        app, [step["corpus"] for step in program.steps or [] if step.get("corpus")]
    )


def corpus_versions(app: DspyOps, corpus_ids: Iterable[str]) -> dict[str, int]:
    """Each corpus's latest version, by id: what a plan that searches them records."""
    return {corpus_id: corpus_ref(app, corpus_id).version for corpus_id in sorted(set(corpus_ids))}


def documents_at(app: DspyOps, corpus_id: str, version: int) -> list[Document]:
    """The corpus's documents as of `version`, in the order they were added; NotFound
    (`loc` `["corpus_id"]` or `["version"]`) if either is not there.

    Replayed from the stored events up to `version` (`repository.get(id, version=...)`),
    never read from the cached aggregate, which another thread may be moving forward
    meanwhile: the documents returned are exactly that version's. A worker loads a
    version once per index it builds, so the replay is not on any hot path.
    """
    return list(_replayed(app, corpus_id, version).documents.values())


def document_texts(app: DspyOps, corpus_id: str, version: int) -> list[tuple[str, str]]:
    """(id, text) of each document as of `version`: the loader of an IndexCache, e.g.
    `IndexCache(functools.partial(document_texts, app))`."""
    return [
        (document["id"], document["text"]) for document in documents_at(app, corpus_id, version)
    ]


def _replayed(app: DspyOps, corpus_id: str, version: int) -> Corpus:
    return app.at_version(Corpus, corpus_uuid(corpus_id), version, "corpus", corpus_id)
