"""Events stored by the layout before the move to one package still load, replay and project.

The fixture store was written by commit b8e1eda (topics `aggregates.*`, see
tests/fixtures/README.md); every event class of that layout and a Program snapshot are in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dspyops.aggregates.app import CommandContext, DspyOps, handle
from dspyops.aggregates.dataset import Dataset
from dspyops.aggregates.ids import dataset_uuid, program_uuid
from dspyops.aggregates.program import Program
from dspyops.bootstrap import open_store
from dspyops.consumers.relay import event_envelope
from dspyops.events.commands import ExecuteProgram, UpdateProgram
from dspyops.projections.projector import Projector
from tests.support.event_store_fixture import (
    dump_table,
    load_event_store_v1,
    read_models_v1,
)


@pytest.fixture
def v1_store(database_url: str, pg_schema: str) -> Iterator[DspyOps]:
    app = open_store(database_url, pg_schema)  # creates the tables
    assert load_event_store_v1(database_url, pg_schema) == 161
    yield app
    app.close()


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id, actor="v1-test")


def test_every_v1_event_loads_and_replays_to_the_same_state(v1_store: DspyOps) -> None:
    notifications = v1_store.recorder.select_notifications(1, 1000)
    assert len(notifications) == 160
    assert {n.topic.split(".", 1)[0] for n in notifications} == {"aggregates"}
    events = [v1_store.mapper.to_domain_event(n) for n in notifications]
    # v1 events get the facts later versions carry, where the event alone implies them.
    facts = {
        type(e).__name__: (getattr(e, "status", "-"), getattr(e, "version", "-"))
        for e in events
        if type(e).__qualname__.startswith("Program.")
    }
    assert facts["Registered"] == ("draft", 1)
    assert facts["TrainingStarted"] == ("training", "-")
    assert facts["Optimized"] == ("optimized", None)
    assert facts["Deployed"] == ("deployed", 3)
    assert facts["Deprecated"] == ("deprecated", "-")
    assert facts["Updated"] == ("-", None)
    qa: Program = v1_store.repository.get(program_uuid("qa"))
    assert isinstance(qa, Program)
    assert (qa.status, qa.latest_version, qa.deployed_version) == ("deprecated", 3, 2)
    # Deployed v3, then rolled back to v2: both served, in that order.
    assert qa.served_versions == [3, 2]
    assert [v["source"] for v in qa.versions] == ["registered", "updated", "optimized"]
    assert qa.versions[2]["optimized_score"] == 0.75
    assert qa.versions[1]["instructions"] == "Answer briefly."
    # p2 has 52 events and a snapshot at 50: the snapshot's old topic loads too.
    assert v1_store.snapshots is not None
    (snapshot,) = v1_store.snapshots.get(program_uuid("p2"))
    assert snapshot.originator_version == 50
    assert type(snapshot.mutate(None)) is Program  # type: ignore[attr-defined]
    p2: Program = v1_store.repository.get(program_uuid("p2"))
    assert p2.version == 52
    assert (p2.status, p2.description) == ("training", "d49")
    evaluated = v1_store.evaluation("cmd-016")
    # v1 did not tell errored examples from wrong answers: the count is unknown, not 0.
    assert (evaluated.score, evaluated.errored) == (0.5, None)
    golden: Dataset = v1_store.repository.get(dataset_uuid("golden"))
    assert isinstance(golden, Dataset)
    assert golden.size == 12


def test_v1_commands_replay_their_stored_outcome(v1_store: DspyOps) -> None:
    outcome = v1_store.stored_outcome("cmd-001")
    assert outcome is not None
    assert outcome.result_type == "ProgramRegistered"
    assert outcome.data["program_id"] == "qa"


def test_new_commands_apply_on_top_of_v1_events(v1_store: DspyOps) -> None:
    outcome = handle(v1_store, UpdateProgram(program_id="p2", description="after"), ctx("new-1"))
    assert outcome.result_type == "ProgramUpdated"
    plan = handle(v1_store, ExecuteProgram(program_id="p2", inputs={"text": "t"}), ctx("x"))
    assert not hasattr(plan, "result_type"), plan
    p2: Program = v1_store.repository.get(program_uuid("p2"))
    assert p2.version == 53


def served(**aliases: int) -> dict[str, Any]:
    return {"aliases": aliases, "splits": {}}


def test_v1_events_project_to_the_read_models_v1_made(
    v1_store: DspyOps, database_url: str, pg_schema: str
) -> None:
    read_schema = f"{pg_schema}_read"
    projector = Projector(database_url, event_store_schema=pg_schema, read_schema=read_schema)
    try:
        assert projector.catch_up() == 160
    finally:
        projector.close()
    try:
        for table, expected in read_models_v1().items():
            rows = dump_table(database_url, read_schema, table, expected["columns"])
            assert rows == expected["rows"], table
        # A table later layouts added, filled from the same v1 events (upcast: Deployed
        # gains its status; that layout rolled back to a version that had not served).
        columns = ["position", "kind", "alias", "previous_version", "version", "state", "actor"]
        assert dump_table(database_url, read_schema, "serving_changes", columns) == [
            [23, "Deployed", "production", None, 3, served(production=3), "fixture"],
            [25, "RolledBack", "production", 3, 2, served(production=2), "fixture"],
            [159, "Deprecated", "production", 2, None, served(), "fixture"],
        ]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{read_schema}" CASCADE')


def test_v1_events_relay_as_the_same_cloudevents(v1_store: DspyOps) -> None:
    notifications = v1_store.recorder.select_notifications(1, 1000)
    relayed = [event_envelope(v1_store, n) for n in notifications]
    types = {envelope.type for _, envelope in relayed}
    assert "dspyops.event.Program.Registered" in types
    assert "dspyops.event.Run.Progressed" in types
    assert "dspyops.event.HandledCommand.Handled" in types
    assert len(relayed) == 160
    # Every event class the v1 layout stored (tests/fixtures/README.md), and no other.
    assert types == {
        f"dspyops.event.{name}"
        for name in (
            "Dataset.ExamplesAppended",
            "Dataset.Registered",
            "Evaluation.Completed",
            "Evaluation.Requested",
            "Execution.Failed",
            "Execution.Requested",
            "Execution.Succeeded",
            "HandledCommand.Handled",
            "Optimization.Completed",
            "Optimization.Requested",
            "Program.Deployed",
            "Program.Deprecated",
            "Program.Optimized",
            "Program.Registered",
            "Program.RolledBack",
            "Program.TrainingStarted",
            "Program.Updated",
            "Run.Cancelled",
            "Run.Failed",
            "Run.Progressed",
            "Run.Started",
        )
    }
    # The first stored event registered program "qa": keyed and addressed by its
    # aggregate's id, its subject the program id users know.
    key, first = relayed[0]
    qa = str(program_uuid("qa"))
    assert (first.type, first.subject, first.aggregateid, key) == (
        "dspyops.event.Program.Registered",
        "qa",
        qa,
        qa,
    )
    assert (first.aggregateversion, first.position) == (1, notifications[0].id)
    [golden] = [
        envelope
        for _, envelope in relayed
        if envelope.type == "dspyops.event.Dataset.Registered" and envelope.subject == "golden"
    ]
    assert golden.aggregateid == str(dataset_uuid("golden"))
