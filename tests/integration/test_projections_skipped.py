"""A stored event the read side cannot apply is skipped and reported, never a wedge.

Events stored before the boundary refused NUL (or written by any future bug) still sit
in the event store. Here they are written through the application directly, as the
previous version stored them; the projector, a rebuild and the API then deal with them.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from dspyops.aggregates.app import CommandContext, DspyOps, ExecutionPlan, handle
from dspyops.api.main import create_app
from dspyops.bootstrap import open_store
from dspyops.events.commands import (
    ExecuteProgram,
    RegisterDataset,
    RegisterProgram,
    TrainProgram,
)
from dspyops.projections.projector import Projector
from dspyops.projections.rebuild import rebuild
from dspyops.settings import Settings
from tests.support.executions import complete

NUL = "patient 4411\x00"  # what a refused value looks like: it must not be quoted


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id, actor="old-version")


@pytest.fixture
def store(database_url: str, pg_schema: str) -> Iterator[DspyOps]:
    app = open_store(database_url, pg_schema)
    yield app
    app.close()


def store_events_the_read_side_cannot_take(app: DspyOps) -> None:
    signature = "question: str -> answer: str"
    handle(app, RegisterProgram(program_id="good", name="ok", signature=signature), ctx("1"))
    handle(app, RegisterProgram(program_id="nul1", name=NUL, signature=signature), ctx("2"))
    handle(app, TrainProgram(program_id="nul1"), ctx("3"))  # its program row never came
    handle(app, RegisterDataset(dataset_id="ds", name=NUL, examples=[{"q": 1}]), ctx("4"))
    plan = handle(app, ExecuteProgram(program_id="good", inputs={"question": NUL}), ctx("5"))
    assert isinstance(plan, ExecutionPlan)
    complete(app, plan, ctx("5"), outputs={"answer": "fine"})
    plan = handle(app, ExecuteProgram(program_id="good", inputs={"question": "ok"}), ctx("6"))
    assert isinstance(plan, ExecutionPlan)
    complete(app, plan, ctx("6"), outputs={"answer": "fine"})


def read(database_url: str, query: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def test_unappliable_events_are_skipped_recorded_and_reported(
    store: DspyOps, database_url: str, pg_schema: str, settings: Settings
) -> None:
    store_events_the_read_side_cannot_take(store)
    read_schema = f"{pg_schema}_read"
    projector = Projector(database_url, event_store_schema=pg_schema, read_schema=read_schema)
    try:
        head = store.recorder.max_notification_id()
        assert projector.catch_up() == head
        assert projector.lag().events_behind == 0
        # New events after the skipped ones are applied as usual.
        handle(store, TrainProgram(program_id="good"), ctx("7"))
        assert projector.catch_up() == 2
    finally:
        projector.close()
    try:
        skipped = read(
            database_url,
            f'SELECT event_type, error_type FROM "{read_schema}".projection_errors '
            "ORDER BY position",
        )
        skipped_positions = [
            p
            for (p,) in read(
                database_url, f'SELECT position FROM "{read_schema}".projection_errors ORDER BY 1'
            )
        ]
        assert skipped == [
            ("Program.Registered", "DataError"),
            ("Program.TrainingStarted", "LookupError"),
            ("Dataset.Registered", "DataError"),
            ("Execution.Requested", "UntranslatableCharacter"),  # a DataError too
        ]
        assert read(database_url, f'SELECT program_id, status FROM "{read_schema}".programs') == [
            ("good", "training")
        ]
        executions = read(database_url, f'SELECT inputs FROM "{read_schema}".executions')
        assert executions == [({"question": "ok"},)]
        api = create_app(
            settings.model_copy(
                update={"event_store_schema": pg_schema, "read_model_schema": read_schema}
            )
        )
        with TestClient(api) as client:
            health = client.get("/health").json()
            metrics = client.get("/metrics").text
        assert health["status"] == "degraded"
        assert health["projection"]["skipped"] == 4
        assert health["projection"]["last_skipped"] == {
            "position": skipped_positions[-1],
            "event_type": "Execution.Requested",
            "error_type": "UntranslatableCharacter",
        }
        messages = read(database_url, f'SELECT message FROM "{read_schema}".projection_errors')
        assert all("patient" not in m for (m,) in messages), messages
        assert any("SQLSTATE" in m for (m,) in messages)
        assert "dspyops_projection_skipped_events 4.0" in metrics
        # A rebuild applies every event again and skips the same ones, no wedge either.
        assert rebuild(database_url, event_store_schema=pg_schema, read_schema=read_schema) > 0
        assert len(read(database_url, f'SELECT 1 FROM "{read_schema}".projection_errors')) == 4
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{read_schema}" CASCADE')
