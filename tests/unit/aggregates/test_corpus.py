"""Corpus: versions, events that carry their facts, and every limit named by document id."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dspyops.aggregates import corpus as corpus_module
from dspyops.aggregates.corpus import (
    MAX_METADATA_BYTES,
    MAX_TEXT_CHARS,
    Corpus,
    Document,
    metadata_bytes,
)
from dspyops.aggregates.errors import InvalidInput
from dspyops.aggregates.ids import corpus_uuid

META: dict[str, Any] = {"command_id": "c", "correlation_id": "c", "actor": None}


def docs(start: int, stop: int) -> list[Document]:
    return [{"id": f"d{i}", "text": f"document number {i}"} for i in range(start, stop)]


def register(documents: list[Document]) -> Corpus:
    return Corpus.register(corpus_id="wiki", name="Wiki", documents=documents, **META)


def errors_of(info: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[list[Any], str, str]]:
    return [(e["loc"], e["type"], e["msg"]) for e in info.value.errors]


def test_each_change_is_the_next_version_and_its_event_carries_version_and_size() -> None:
    corpus = register(docs(0, 3))
    corpus.append(docs(3, 5), **META)
    corpus.remove(["d0", "d4"], **META)
    assert corpus.id == corpus_uuid("wiki")
    assert (corpus.version, corpus.size) == (3, 3)
    assert list(corpus.documents) == ["d1", "d2", "d3"]
    events = corpus.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Registered",
        "DocumentsAppended",
        "DocumentsRemoved",
    ]
    facts = [(e.originator_version, e.version, e.size) for e in events]  # type: ignore[attr-defined]
    assert facts == [(1, 1, 3), (2, 2, 5), (3, 3, 3)]
    assert events[1].documents == docs(3, 5)  # type: ignore[attr-defined]
    assert events[2].document_ids == ["d0", "d4"]  # type: ignore[attr-defined]


def test_an_empty_corpus_is_version_one_and_removal_can_empty_it() -> None:
    corpus = register([])
    assert (corpus.version, corpus.size) == (1, 0)
    corpus.append(docs(0, 1), **META)
    corpus.remove(["d0"], **META)
    assert (corpus.version, corpus.size, corpus.text_chars) == (3, 0, 0)


def test_a_removed_id_can_be_added_again() -> None:
    corpus = register(docs(0, 2))
    corpus.remove(["d0"], **META)
    corpus.append([{"id": "d0", "text": "back again"}], **META)
    assert list(corpus.documents) == ["d1", "d0"]
    assert corpus.documents["d0"]["text"] == "back again"


def test_duplicate_ids_in_the_message_and_in_the_corpus_are_named() -> None:
    corpus = register(docs(0, 3))
    batch: list[Document] = [
        *docs(5, 7),
        {"id": "d1", "text": "again"},
        {"id": "d5", "text": "twice"},
    ]
    with pytest.raises(InvalidInput) as info:
        corpus.append(batch, **META)
    assert errors_of(info) == [
        (["documents", 2, "id"], "already_exists", "document id 'd1' is already in corpus 'wiki'"),
        (
            ["documents", 3, "id"],
            "duplicate_id",
            "document id 'd5' is sent twice (first at documents[0])",
        ),
    ]
    assert (corpus.version, corpus.size) == (1, 3)
    assert len(corpus.pending_events) == 1


def test_empty_and_whitespace_texts_are_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        register([{"id": "a", "text": ""}, {"id": "b", "text": " \n\t\u3000"}, *docs(0, 1)])
    assert errors_of(info) == [
        (
            ["documents", 0, "text"],
            "empty_text",
            "document 'a': the text is empty or only whitespace",
        ),
        (
            ["documents", 1, "text"],
            "empty_text",
            "document 'b': the text is empty or only whitespace",
        ),
    ]


def test_a_text_and_metadata_over_their_limits_name_the_document() -> None:
    big = {"blob": "x" * MAX_METADATA_BYTES}
    fits = {"blob": "é" * ((MAX_METADATA_BYTES - 12) // 2)}
    assert metadata_bytes(fits) <= MAX_METADATA_BYTES
    batch: list[Document] = [
        {"id": "long", "text": "y" * (MAX_TEXT_CHARS + 1)},
        {"id": "ok", "text": "y" * MAX_TEXT_CHARS, "metadata": fits},
        {"id": "meta", "text": "fine", "metadata": big},
    ]
    with pytest.raises(InvalidInput) as info:
        register(batch)
    assert errors_of(info) == [
        (
            ["documents", 0, "text"],
            "too_large",
            f"document 'long': 100,001 characters of text, at most {MAX_TEXT_CHARS:,}",
        ),
        (
            ["documents", 2, "metadata"],
            "too_large",
            f"document 'meta': {metadata_bytes(big):,} bytes of metadata JSON, at most 32,768",
        ),
    ]


def test_metadata_is_measured_as_compact_utf8_json() -> None:
    assert metadata_bytes({"a": 1}) == len('{"a":1}')
    assert metadata_bytes({"k": "é"}) == len('{"k":"é"}'.encode())


def test_too_many_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "MAX_DOCUMENTS_PER_MESSAGE", 2)
    with pytest.raises(InvalidInput) as info:
        register(docs(0, 3))
    assert errors_of(info) == [(["documents"], "too_large", "3 documents, at most 2 per message")]
    corpus = register(docs(0, 1))
    with pytest.raises(InvalidInput) as removal:
        corpus.remove(["a", "b", "c"], **META)
    assert removal.value.errors[0]["msg"] == "3 ids, at most 2 per message"


def test_too_many_in_the_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "MAX_DOCUMENTS_PER_CORPUS", 10)
    corpus = register(docs(0, 8))
    with pytest.raises(InvalidInput) as info:
        corpus.append(docs(8, 11), **META)
    assert errors_of(info) == [
        (["documents"], "too_large", "a corpus holds at most 10 documents (8 stored, 3 sent)")
    ]
    corpus.remove(["d0"], **META)
    corpus.append(docs(8, 11), **META)
    assert corpus.size == 10


def test_too_much_text_in_the_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "MAX_CORPUS_TEXT_CHARS", 30)
    corpus = register([{"id": "a", "text": "x" * 20}])
    with pytest.raises(InvalidInput) as info:
        corpus.append([{"id": "b", "text": "y" * 11}], **META)
    assert errors_of(info) == [
        (
            ["documents"],
            "too_large",
            "a corpus holds at most 30 characters of text (20 stored, 11 sent)",
        )
    ]
    corpus.remove(["a"], **META)
    corpus.append([{"id": "b", "text": "y" * 30}], **META)
    assert corpus.text_chars == 30


def test_removing_ids_not_there_or_twice_names_each() -> None:
    corpus = register(docs(0, 3))
    with pytest.raises(InvalidInput) as info:
        corpus.remove(["d1", "gone", "d1", "d2"], **META)
    assert errors_of(info) == [
        (["document_ids", 1], "not_found", "document 'gone' is not in corpus 'wiki'"),
        (
            ["document_ids", 2],
            "duplicate_id",
            "document id 'd1' is sent twice (first at document_ids[0])",
        ),
    ]
    assert corpus.size == 3


def test_nothing_to_append_or_remove_is_refused() -> None:
    corpus = register(docs(0, 1))
    with pytest.raises(InvalidInput) as appended:
        corpus.append([], **META)
    with pytest.raises(InvalidInput) as removed:
        corpus.remove([], **META)
    assert appended.value.errors[0]["loc"] == ["documents"]
    assert removed.value.errors[0]["loc"] == ["document_ids"]
    assert corpus.version == 1


def test_errors_stop_at_fifty() -> None:
    with pytest.raises(InvalidInput) as info:
        register([{"id": f"e{i}", "text": " "} for i in range(80)])
    assert len(info.value.errors) == 50


def test_a_copy_for_a_command_leaves_the_original_as_it_was() -> None:
    original = register(docs(0, 3))
    original.collect_events()
    clone = copy.deepcopy(original)
    clone.append(docs(3, 4), **META)
    clone.remove(["d0"], **META)
    assert (original.version, original.size, list(original.documents)) == (1, 3, ["d0", "d1", "d2"])
    assert original.pending_events == []
    assert (clone.version, clone.size, len(clone.pending_events)) == (3, 3, 2)
    assert clone.documents["d1"] is original.documents["d1"]
