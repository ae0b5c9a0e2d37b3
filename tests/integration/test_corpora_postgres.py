"""Corpora on real PostgreSQL: documents as of each version, the read model and its API."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from dspyops.aggregates.app import DspyOps, Outcome, handle
from dspyops.aggregates.app.corpora import corpus_ref, document_texts, documents_at
from dspyops.api.main import create_app
from dspyops.bootstrap import open_store
from dspyops.events.commands import AppendDocuments, Document, RegisterCorpus, RemoveDocuments
from dspyops.projections.projector import Projector
from dspyops.runtime.retrieval import IndexCache
from dspyops.settings import Settings
from tests.support.read_story import ctx, schemas

WIKI = [
    Document(id="paris", text="Paris is the capital of France.", metadata={"page": 12}),
    Document(id="seine", text="The Seine flows through Paris."),
    Document(id="zurich", text="Zürich liegt am Zürichsee — « ville suisse »."),
]
MORE = [
    Document(id="lyon", text="Lyon lies where the Rhone and the Saone meet."),
    Document(id="rome", text="Rome is the capital of Italy.", metadata={"tags": ["it", None]}),
]


def run(app: DspyOps, command: Any, actor: str = "alice") -> Outcome:
    outcome = handle(app, command, ctx(actor))
    assert isinstance(outcome, Outcome)
    return outcome


@pytest.fixture(scope="module")
def world(settings: Settings, database_url: str) -> Iterator[dict[str, Any]]:
    """wiki: v1 three documents, v2 + lyon, rome, v3 - seine, a rejected append; five
    more corpora for paging. Projected once; the tests only read."""
    suffix = uuid.uuid4().hex[:10]
    es, rs = f"test_es_{suffix}", f"test_rd_{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        outcomes = [
            run(store, RegisterCorpus(corpus_id="wiki", name="Wiki", documents=WIKI)),
            run(store, AppendDocuments(corpus_id="wiki", documents=MORE)),
            run(store, RemoveDocuments(corpus_id="wiki", document_ids=["seine"]), actor="bob"),
            run(store, AppendDocuments(corpus_id="wiki", documents=[WIKI[0]])),
        ]
        for number in range(5):
            run(store, RegisterCorpus(corpus_id=f"c{number}", name=f"C{number}"))
        store.close()
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        projector.catch_up()
        projector.close()
        configured = settings.model_copy(
            update={
                "database_url": database_url,
                "event_store_schema": es,
                "read_model_schema": rs,
                "api_token": None,
            }
        )
        yield {"settings": configured, "outcomes": outcomes, "es": es, "rs": rs}


@pytest.fixture
def fresh(world: dict[str, Any], database_url: str) -> Iterator[DspyOps]:
    """Another process's view: its own connections and an empty aggregate cache."""
    app = open_store(database_url, world["es"])
    yield app
    app.close()


def test_each_command_answers_its_version_and_a_bad_append_is_named(
    world: dict[str, Any],
) -> None:
    registered, appended, removed, rejected = world["outcomes"]
    assert [(o.data["version"], o.data["size"]) for o in (registered, appended, removed)] == [
        (1, 3),
        (2, 5),
        (3, 4),
    ]
    assert rejected.data["errors"] == [
        {
            "loc": ["documents", 0, "id"],
            "msg": "document id 'paris' is already in corpus 'wiki'",
            "type": "already_exists",
        }
    ]


def test_documents_as_of_each_version_from_the_store(fresh: DspyOps) -> None:
    ids = {v: [d["id"] for d in documents_at(fresh, "wiki", v)] for v in (3, 1, 2)}
    assert ids == {
        1: ["paris", "seine", "zurich"],
        2: ["paris", "seine", "zurich", "lyon", "rome"],
        3: ["paris", "zurich", "lyon", "rome"],
    }
    (zurich,) = [d for d in documents_at(fresh, "wiki", 1) if d["id"] == "zurich"]
    assert zurich == {"id": "zurich", "text": WIKI[2].text}
    rome = documents_at(fresh, "wiki", 3)[-1]
    assert rome == {"id": "rome", "text": MORE[1].text, "metadata": {"tags": ["it", None]}}
    assert corpus_ref(fresh, "wiki").version == 3


def test_an_index_cache_over_the_store_searches_each_version(fresh: DspyOps) -> None:
    cache = IndexCache(functools.partial(document_texts, fresh))
    assert [hit.id for hit in cache.search("wiki", 2, "seine", 3)] == ["seine"]
    assert cache.search("wiki", 3, "seine", 3) == []
    assert [hit.id for hit in cache.search("wiki", 3, "capital", 5)] == ["paris", "rome"]
    assert cache.builds == 2


def test_the_read_model_copies_version_and_size(world: dict[str, Any], database_url: str) -> None:
    rs = world["rs"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f'SELECT name, version, size, created_at < updated_at FROM "{rs}".corpora '
            "WHERE corpus_id = 'wiki'"
        ).fetchone()
        audit = conn.execute(
            f'SELECT aggregate_version, event_type, actor, changes FROM "{rs}".audit_log '
            "WHERE aggregate_kind = 'corpus' AND aggregate_id = 'wiki' ORDER BY position"
        ).fetchall()
        skipped = conn.execute(f'SELECT count(*) FROM "{rs}".projection_errors').fetchone()
    assert row == ("Wiki", 3, 4, True)
    assert audit == [
        (
            1,
            "Registered",
            "alice",
            {
                "name": {"before": None, "after": "Wiki"},
                "version": {"before": None, "after": 1},
                "size": {"before": None, "after": 3},
            },
        ),
        (
            2,
            "DocumentsAppended",
            "alice",
            {"version": {"before": 1, "after": 2}, "size": {"before": 3, "after": 5}},
        ),
        (
            3,
            "DocumentsRemoved",
            "bob",
            {"version": {"before": 2, "after": 3}, "size": {"before": 5, "after": 4}},
        ),
    ]
    assert skipped == (0,)


@pytest.fixture(scope="module")
def client(world: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(world["settings"])) as test_client:
        yield test_client


def test_one_corpus(client: TestClient) -> None:
    body = client.get("/corpora/wiki").json()
    assert {k: body[k] for k in ("corpus_id", "name", "version", "size")} == {
        "corpus_id": "wiki",
        "name": "Wiki",
        "version": 3,
        "size": 4,
    }
    assert set(body) == {"corpus_id", "name", "version", "size", "created_at", "updated_at"}
    missing = client.get("/corpora/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "corpus 'nope' not found"})


def test_corpora_page_newest_first(client: TestClient) -> None:
    pages, cursor = [], None
    while True:
        body = client.get("/corpora", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert body.status_code == 200
        pages.append([item["corpus_id"] for item in body.json()["items"]])
        cursor = body.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [["c4", "c3"], ["c2", "c1"], ["c0", "wiki"]]
