"""Corpus commands through Kafka to a real worker process: each answered with the version
and size it made, a bad append or removal rejected naming the document id, the corpus
readable at every version from the worker's event store, and projected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from dspyops.aggregates.app.corpora import documents_at
from dspyops.bootstrap import open_store
from dspyops.client.keys import record_key
from dspyops.consumers.topic_admin import ensure_topics
from dspyops.events.codec import encode
from dspyops.events.envelope import Envelope, command_envelope
from dspyops.events.topics import Topics, command_topic
from dspyops.projections.projector import Projector
from tests.support.kafka import TopicReader, produce
from tests.support.worker_process import WorkerProcess


def doc(doc_id: str, text: str = "", **metadata: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": doc_id, "text": text or f"{doc_id} is about retrieval"}
    if metadata:
        found["metadata"] = metadata
    return found


def envelope(command_type: str, data: dict[str, Any]) -> Envelope:
    return command_envelope(command_type, data, subject=data.get("corpus_id"))


def answer(answered: dict[str, list[dict[str, Any]]], sent: Envelope) -> tuple[str, Any]:
    (result,) = answered[sent.id]
    return result["type"].rsplit(".", 1)[-1], result


async def test_corpus_commands_through_a_worker_and_a_bad_append_names_the_id(
    env: dict[str, str], database_url: str, tmp_path: Path, unique: str
) -> None:
    topics = Topics(env["DSPYOPS_TOPIC_PREFIX"])
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, topics.all, partitions=4)
    wiki = f"wiki-{unique}"
    register = envelope(
        "RegisterCorpus",
        {
            "corpus_id": wiki,
            "name": "Wiki",
            "documents": [doc("d1", source="atlas"), doc("d2"), doc("d3", "Zürich — 東京")],
        },
    )
    append = envelope("AppendDocuments", {"corpus_id": wiki, "documents": [doc("d4"), doc("d5")]})
    remove = envelope("RemoveDocuments", {"corpus_id": wiki, "document_ids": ["d1"]})
    # Sent after the others on the same key, so handled after them, in this order.
    duplicate = envelope(
        "AppendDocuments", {"corpus_id": wiki, "documents": [doc("d6"), doc("d2"), doc("d6")]}
    )
    removed_twice = envelope("RemoveDocuments", {"corpus_id": wiki, "document_ids": ["d1"]})
    blank = envelope("AppendDocuments", {"corpus_id": wiki, "documents": [doc("d7", " ")]})
    unnamed = envelope("RegisterCorpus", {"name": "Default id"})
    sent = [register, append, remove, duplicate, removed_twice, blank, unnamed]
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        async with TopicReader(bootstrap, topics.results) as results:
            await produce(
                bootstrap,
                [(command_topic(topics, e.short_type), record_key(e), encode(e)) for e in sent],
            )
            answered = await results.results_for([e.id for e in sent], timeout_s=120)
        assert worker.alive(), worker.log()[-2000:]

    base = {"corpus_id": wiki, "name": "Wiki"}
    assert [answer(answered, e)[1]["data"] for e in (register, append, remove)] == [
        {**base, "version": 1, "size": 3},
        {**base, "version": 2, "size": 5, "appended": 2},
        {**base, "version": 3, "size": 4, "removed": 1},
    ]
    assert [answer(answered, e)[0] for e in (register, append, remove)] == [
        "CorpusRegistered",
        "DocumentsAppended",
        "DocumentsRemoved",
    ]
    assert {answer(answered, e)[1]["subject"] for e in (register, append, remove)} == {wiki}
    rejections = {
        label: answer(answered, e)
        for label, e in (("dup", duplicate), ("twice", removed_twice), ("blank", blank))
    }
    assert {label: kind for label, (kind, _) in rejections.items()} == dict.fromkeys(
        rejections, "CommandRejected"
    )
    assert rejections["dup"][1]["data"]["errors"] == [
        {
            "loc": ["documents", 1, "id"],
            "msg": f"document id 'd2' is already in corpus '{wiki}'",
            "type": "already_exists",
        },
        {
            "loc": ["documents", 2, "id"],
            "msg": "document id 'd6' is sent twice (first at documents[0])",
            "type": "duplicate_id",
        },
    ]
    assert rejections["twice"][1]["data"]["errors"] == [
        {
            "loc": ["document_ids", 0],
            "msg": f"document 'd1' is not in corpus '{wiki}'",
            "type": "not_found",
        }
    ]
    (blank_error,) = rejections["blank"][1]["data"]["errors"]
    assert (blank_error["loc"], blank_error["type"]) == (["documents", 0, "text"], "empty_text")
    assert "'d7'" in blank_error["msg"]
    kind, default = answer(answered, unnamed)
    assert (kind, default["data"]["corpus_id"], default["data"]["version"]) == (
        "CorpusRegistered",
        unnamed.id,
        1,
    )

    store = open_store(database_url, env["DSPYOPS_EVENT_STORE_SCHEMA"])
    try:
        at = {v: [d["id"] for d in documents_at(store, wiki, v)] for v in (1, 2, 3)}
        latest = documents_at(store, wiki, 3)
    finally:
        store.close()
    assert at == {
        1: ["d1", "d2", "d3"],
        2: ["d1", "d2", "d3", "d4", "d5"],
        3: ["d2", "d3", "d4", "d5"],
    }
    assert latest[1] == doc("d3", "Zürich — 東京")

    read = f"read_{unique}"
    projector = Projector(
        database_url, event_store_schema=env["DSPYOPS_EVENT_STORE_SCHEMA"], read_schema=read
    )
    try:
        projector.catch_up()
    finally:
        projector.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f'SELECT corpus_id, version, size FROM "{read}".corpora').fetchall()
        skipped = conn.execute(f'SELECT count(*) FROM "{read}".projection_errors').fetchone()
    # Keyed apart, the two corpora may be handled in either order.
    assert sorted(rows) == sorted([(wiki, 3, 4), (unnamed.id, 1, 0)])
    assert skipped == (0,)
