"""The Corpus aggregate: documents a program retrieves from, each change a new version.

A corpus version is its aggregate version: every event (registered, documents appended,
documents removed) changes the documents and makes the next version, so eventsourcing's
`repository.get(id, version=N)` is the corpus as of version N. An event that changed no
documents would break that: add none without changing `documents_at`
(aggregates/app/corpora.py). Each event carries the facts it results in (`version`,
`size`), so the read side copies them.

Every limit is checked before anything is recorded, and each error names the document
by its index and quotes its id.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Container, Sequence
from typing import Any, NotRequired, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from dspyops.aggregates.errors import MAX_REPORTED_ERRORS, ErrorDict, InvalidInput, error
from dspyops.aggregates.ids import corpus_uuid
from dspyops.events.commands import MAX_DOCUMENTS_PER_MESSAGE


class Document(TypedDict):
    id: str
    text: str
    metadata: NotRequired[dict[str, Any]]


# A corpus is loaded whole into a worker and indexed there: 100,000 short documents
# (9 M characters) index in 1 to 3 s on a small machine (bench/bench_retrieval.py), 20 M
# characters in about 4 s; these keep the first search of a version that long at most,
# and a corpus's memory in a worker to about 100 MB (aggregate and index).
MAX_DOCUMENTS_PER_CORPUS = 100_000
MAX_CORPUS_TEXT_CHARS = 20_000_000
MAX_TEXT_CHARS = 100_000
MAX_METADATA_BYTES = 32_768
# A report stops here; the first errors are enough to fix a batch.


def metadata_bytes(metadata: dict[str, Any]) -> int:
    """The size of `metadata` as compact UTF-8 JSON."""
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return len(text.encode())


def check_documents(
    documents: Sequence[Document],
    *,
    corpus_id: str,
    stored: Container[str],
    stored_size: int,
    stored_chars: int,
) -> None:
    """Raise InvalidInput listing every document that breaks a rule (up to a limit)."""
    errors = _batch_errors(documents, stored_size=stored_size, stored_chars=stored_chars)
    first_at: dict[str, int] = {}
    for index, document in enumerate(documents):
        doc_id, text = document["id"], document["text"]
        where: list[str | int] = ["documents", index]
        if doc_id in first_at:
            first = first_at[doc_id]
            msg = f"document id {doc_id!r} is sent twice (first at documents[{first}])"
            errors.append(error([*where, "id"], msg, "duplicate_id"))
        elif doc_id in stored:
            msg = f"document id {doc_id!r} is already in corpus {corpus_id!r}"
            errors.append(error([*where, "id"], msg, "already_exists"))
        first_at.setdefault(doc_id, index)
        if not text.strip():
            msg = f"document {doc_id!r}: the text is empty or only whitespace"
            errors.append(error([*where, "text"], msg, "empty_text"))
        elif len(text) > MAX_TEXT_CHARS:
            msg = (
                f"document {doc_id!r}: {len(text):,} characters of text, at most {MAX_TEXT_CHARS:,}"
            )
            errors.append(error([*where, "text"], msg, "too_large"))
        size = metadata_bytes(document["metadata"]) if "metadata" in document else 0
        if size > MAX_METADATA_BYTES:
            msg = (
                f"document {doc_id!r}: {size:,} bytes of metadata JSON, "
                f"at most {MAX_METADATA_BYTES:,}"
            )
            errors.append(error([*where, "metadata"], msg, "too_large"))
    if errors:
        raise InvalidInput(errors=errors[:MAX_REPORTED_ERRORS])


def _batch_errors(
    documents: Sequence[Document], *, stored_size: int, stored_chars: int
) -> list[ErrorDict]:
    errors: list[ErrorDict] = []
    sent = len(documents)
    if sent > MAX_DOCUMENTS_PER_MESSAGE:
        msg = f"{sent:,} documents, at most {MAX_DOCUMENTS_PER_MESSAGE:,} per message"
        errors.append(error(["documents"], msg, "too_large"))
    if stored_size + sent > MAX_DOCUMENTS_PER_CORPUS:
        msg = (
            f"a corpus holds at most {MAX_DOCUMENTS_PER_CORPUS:,} documents "
            f"({stored_size:,} stored, {sent:,} sent)"
        )
        errors.append(error(["documents"], msg, "too_large"))
    chars = sum(len(document["text"]) for document in documents)
    if stored_chars + chars > MAX_CORPUS_TEXT_CHARS:
        msg = (
            f"a corpus holds at most {MAX_CORPUS_TEXT_CHARS:,} characters of text "
            f"({stored_chars:,} stored, {chars:,} sent)"
        )
        errors.append(error(["documents"], msg, "too_large"))
    return errors


def check_removal(document_ids: Sequence[str], *, corpus_id: str, stored: Container[str]) -> None:
    """Raise InvalidInput naming every id that is sent twice or not in the corpus."""
    errors: list[ErrorDict] = []
    if not document_ids:
        errors.append(error(["document_ids"], "remove at least one document", "invalid_input"))
    if len(document_ids) > MAX_DOCUMENTS_PER_MESSAGE:
        msg = f"{len(document_ids):,} ids, at most {MAX_DOCUMENTS_PER_MESSAGE:,} per message"
        errors.append(error(["document_ids"], msg, "too_large"))
    first_at: dict[str, int] = {}
    for index, doc_id in enumerate(document_ids):
        if doc_id in first_at:
            first = first_at[doc_id]
            msg = f"document id {doc_id!r} is sent twice (first at document_ids[{first}])"
            errors.append(error(["document_ids", index], msg, "duplicate_id"))
        elif doc_id not in stored:
            msg = f"document {doc_id!r} is not in corpus {corpus_id!r}"
            errors.append(error(["document_ids", index], msg, "not_found"))
        first_at.setdefault(doc_id, index)
    if errors:
        raise InvalidInput(errors=errors[:MAX_REPORTED_ERRORS])


class Corpus(Aggregate):
    @staticmethod
    def create_id(corpus_id: str) -> UUID:
        return corpus_uuid(corpus_id)

    @classmethod
    def register(cls, corpus_id: str, name: str, documents: list[Document], **meta: Any) -> Corpus:
        check_documents(documents, corpus_id=corpus_id, stored=(), stored_size=0, stored_chars=0)
        return cls(
            corpus_id=corpus_id,
            name=name,
            documents=documents,
            version=1,
            size=len(documents),
            **meta,
        )

    @event("Registered")
    def __init__(
        self,
        corpus_id: str,
        name: str,
        documents: list[Document],
        version: int,
        size: int,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self.corpus_id = corpus_id
        self.name = name
        # By id, in the order added; the values are read-only (shared with the events).
        self.documents: dict[str, Document] = {}
        self.text_chars = 0
        self._add(documents)

    def append(self, documents: list[Document], **meta: Any) -> None:
        if not documents:
            raise InvalidInput("append at least one document", loc=["documents"])
        check_documents(
            documents,
            corpus_id=self.corpus_id,
            stored=self.documents,
            stored_size=self.size,
            stored_chars=self.text_chars,
        )
        size = self.size + len(documents)
        self._appended(documents=documents, version=self.version + 1, size=size, **meta)

    @event("DocumentsAppended")
    def _appended(
        self,
        documents: list[Document],
        version: int,
        size: int,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        self._add(documents)

    def remove(self, document_ids: list[str], **meta: Any) -> None:
        check_removal(document_ids, corpus_id=self.corpus_id, stored=self.documents)
        size = self.size - len(document_ids)
        self._removed(document_ids=document_ids, version=self.version + 1, size=size, **meta)

    @event("DocumentsRemoved")
    def _removed(
        self,
        document_ids: list[str],
        version: int,
        size: int,
        command_id: str,
        correlation_id: str,
        actor: str | None,
    ) -> None:
        for doc_id in document_ids:
            self.text_chars -= len(self.documents.pop(doc_id)["text"])

    def _add(self, documents: list[Document]) -> None:
        for document in documents:
            self.documents[document["id"]] = document
            self.text_chars += len(document["text"])

    def __deepcopy__(self, memo: dict[int, Any]) -> Corpus:
        """The copy a command changes (eventsourcing copies cached aggregates for writes):
        its own document table and pending events, sharing the documents themselves, which
        no event changes in place. Copying 100,000 documents deeply costs about 0.3 s."""
        clone = copy.copy(self)
        clone.documents = dict(self.documents)
        clone._pending_events = list(self._pending_events)
        memo[id(self)] = clone
        return clone

    # --- queries -------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.documents)
