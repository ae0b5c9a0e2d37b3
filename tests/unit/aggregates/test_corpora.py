"""Corpus commands through the one command table, and reading a corpus at a version."""

from __future__ import annotations

from typing import Any

import pytest

from dspyops.aggregates.app import CommandContext, DspyOps, Outcome, handle, in_memory_env
from dspyops.aggregates.app.corpora import (
    CorpusRef,
    corpus_ref,
    corpus_versions,
    document_texts,
    documents_at,
)
from dspyops.aggregates.errors import NotFound
from dspyops.events.commands import AppendDocuments, Document, RegisterCorpus, RemoveDocuments


@pytest.fixture
def app() -> DspyOps:
    return DspyOps(in_memory_env())


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, command_id: str | None = None) -> CommandContext:
        self.n += 1
        command_id = command_id or f"cmd-{self.n}"
        return CommandContext(command_id=command_id, correlation_id=command_id, actor="t")


@pytest.fixture
def ctx() -> Ids:
    return Ids()


def docs(*ids: str, **metadata: Any) -> list[Document]:
    return [Document(id=i, text=f"text of {i}", metadata=metadata or None) for i in ids]


def seed(app: DspyOps, ctx: Ids) -> None:
    """wiki: v1 a, b; v2 + c; v3 - a."""
    handle(app, RegisterCorpus(corpus_id="wiki", name="Wiki", documents=docs("a", "b")), ctx())
    handle(app, AppendDocuments(corpus_id="wiki", documents=docs("c", src="x")), ctx())
    handle(app, RemoveDocuments(corpus_id="wiki", document_ids=["a"]), ctx())


def test_register_append_remove_answer_version_and_size(app: DspyOps, ctx: Ids) -> None:
    outcomes = [
        handle(app, RegisterCorpus(corpus_id="wiki", name="Wiki", documents=docs("a")), ctx()),
        handle(app, AppendDocuments(corpus_id="wiki", documents=docs("b", "c")), ctx()),
        handle(app, RemoveDocuments(corpus_id="wiki", document_ids=["a", "c"]), ctx()),
    ]
    base = {"corpus_id": "wiki", "name": "Wiki"}
    assert [(o.result_type, o.subject, o.data) for o in outcomes] == [
        ("CorpusRegistered", "wiki", {**base, "version": 1, "size": 1}),
        ("DocumentsAppended", "wiki", {**base, "version": 2, "size": 3, "appended": 2}),
        ("DocumentsRemoved", "wiki", {**base, "version": 3, "size": 1, "removed": 2}),
    ]


def test_the_corpus_id_defaults_to_the_command_id(app: DspyOps, ctx: Ids) -> None:
    outcome = handle(app, RegisterCorpus(name="Wiki"), ctx("env-1"))
    assert (outcome.subject, outcome.data["corpus_id"], outcome.data["size"]) == (
        "env-1",
        "env-1",
        0,
    )
    assert app.corpus("env-1").name == "Wiki"


def test_registering_twice_and_unknown_corpora_are_rejected(app: DspyOps, ctx: Ids) -> None:
    handle(app, RegisterCorpus(corpus_id="wiki", name="Wiki"), ctx())
    again = handle(app, RegisterCorpus(corpus_id="wiki", name="Other"), ctx())
    missing = handle(app, AppendDocuments(corpus_id="nope", documents=docs("a")), ctx())
    gone = handle(app, RemoveDocuments(corpus_id="nope", document_ids=["a"]), ctx())
    firsts = [(o.result_type, o.data["errors"][0]) for o in (again, missing, gone)]
    assert [(kind, error["loc"], error["type"]) for kind, error in firsts] == [
        ("CommandRejected", ["corpus_id"], "already_exists"),
        ("CommandRejected", ["corpus_id"], "not_found"),
        ("CommandRejected", ["corpus_id"], "not_found"),
    ]
    assert missing.subject == "nope"


def test_a_bad_append_names_the_id_and_changes_nothing(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    outcome = handle(app, AppendDocuments(corpus_id="wiki", documents=docs("d", "b")), ctx())
    assert outcome.result_type == "CommandRejected"
    assert outcome.data["errors"] == [
        {
            "loc": ["documents", 1, "id"],
            "msg": "document id 'b' is already in corpus 'wiki'",
            "type": "already_exists",
        }
    ]
    assert app.corpus("wiki").version == 3


def test_a_redelivered_command_replays_its_outcome(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    command = AppendDocuments(corpus_id="wiki", documents=docs("d"))
    first = handle(app, command, ctx("same"))
    second = handle(app, command, ctx("same"))
    assert first == second
    assert isinstance(first, Outcome)
    assert app.corpus("wiki").version == 4


def test_metadata_is_kept_only_when_given(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    assert documents_at(app, "wiki", 3) == [
        {"id": "b", "text": "text of b"},
        {"id": "c", "text": "text of c", "metadata": {"src": "x"}},
    ]


def test_documents_at_each_version(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    ids = {v: [d["id"] for d in documents_at(app, "wiki", v)] for v in (1, 2, 3)}
    assert ids == {1: ["a", "b"], 2: ["a", "b", "c"], 3: ["b", "c"]}
    assert document_texts(app, "wiki", 2) == [
        ("a", "text of a"),
        ("b", "text of b"),
        ("c", "text of c"),
    ]


@pytest.mark.parametrize("version", [0, 4, -1])
def test_a_version_that_does_not_exist_is_not_found(app: DspyOps, ctx: Ids, version: int) -> None:
    seed(app, ctx)
    with pytest.raises(NotFound) as info:
        documents_at(app, "wiki", version)
    assert info.value.errors[0]["loc"] == ["version"]
    with pytest.raises(NotFound) as ref:
        corpus_ref(app, "wiki", version)
    assert ref.value.errors[0]["loc"] == ["version"]


def test_corpus_ref_names_the_latest_or_a_chosen_version(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    latest = corpus_ref(app, "wiki")
    assert latest == CorpusRef(corpus_id="wiki", version=3)
    assert corpus_ref(app, "wiki", 2) == CorpusRef(corpus_id="wiki", version=2)
    assert hash(latest) == hash(CorpusRef(corpus_id="wiki", version=3))
    for missing in (lambda: corpus_ref(app, "nope"), lambda: documents_at(app, "nope", 1)):
        with pytest.raises(NotFound) as info:
            missing()
        assert info.value.errors[0]["loc"] == ["corpus_id"]


def test_a_ref_keeps_its_documents_while_the_corpus_changes(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    ref = corpus_ref(app, "wiki")
    handle(app, AppendDocuments(corpus_id="wiki", documents=docs("z")), ctx())
    assert [d["id"] for d in documents_at(app, ref.corpus_id, ref.version)] == ["b", "c"]
    assert corpus_ref(app, "wiki").version == 4


def test_what_a_plan_records_and_registration_checks(app: DspyOps, ctx: Ids) -> None:
    seed(app, ctx)
    handle(app, RegisterCorpus(corpus_id="notes", name="Notes"), ctx())
    assert corpus_versions(app, ["wiki", "notes", "wiki"]) == {"notes": 1, "wiki": 3}
    assert corpus_versions(app, []) == {}
    assert (app.corpus_exists("wiki"), app.corpus_exists("nope")) == (True, False)
    with pytest.raises(NotFound):
        corpus_versions(app, ["wiki", "nope"])
