"""event_reads.select_many on real PostgreSQL: the stored events of many aggregates in one
query, the same as reading each; and executions planned together (`handle_many`) keep
every guarantee of one by one."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from dspyops.aggregates.app import (
    CommandContext,
    DspyOps,
    ExecutionPlan,
    Outcome,
    handle,
    handle_many,
)
from dspyops.aggregates.app.handlers import for_command
from dspyops.aggregates.app.persistence import eventsourcing_env
from dspyops.aggregates.ids import command_uuid, execution_uuid
from dspyops.event_reads import select_many
from dspyops.events.commands import ExecuteProgram, RegisterProgram
from tests.support.executions import complete


@pytest.fixture
def app(database_url: str, pg_schema: str) -> Iterator[DspyOps]:
    store = DspyOps(eventsourcing_env(database_url, schema=pg_schema), select_many=select_many)
    yield store
    store.close()


def ctx(command_id: str) -> CommandContext:
    return CommandContext(command_id=command_id, correlation_id=command_id, actor=None)


def test_many_aggregates_in_one_query_as_each_alone(app: DspyOps) -> None:
    handle(app, RegisterProgram(program_id="p", name="P", signature="q: str -> a: str"), ctx("r"))
    plan = handle(app, ExecuteProgram(program_id="p", inputs={"q": "?"}), ctx("e1"))
    complete(app, plan, ctx("e1"), outputs={"a": "x"})
    ids = [command_uuid("e1"), execution_uuid("e1"), uuid4(), command_uuid("r")]
    found = select_many(app.recorder, ids)
    assert set(found) == set(ids)
    for aggregate_id in ids:
        assert found[aggregate_id] == list(app.recorder.select_events(aggregate_id))
    assert [len(found[i]) for i in ids] == [1, 2, 0, 1]


def test_executions_planned_together_keep_redelivery_and_id_checks(app: DspyOps) -> None:
    handle(app, RegisterProgram(program_id="p", name="P", signature="q: str -> a: str"), ctx("r"))
    first = ExecuteProgram(program_id="p", inputs={"q": "?"})
    # As the worker does: the context carries the command's type and payload digest.
    first_ctx = for_command(first, ctx("e1"))
    stored = complete(app, handle(app, first, first_ctx), first_ctx, outputs={"a": "x"})
    items = [
        (ExecuteProgram(program_id="p", inputs={"q": "?"}), ctx("e1")),  # redelivered
        (ExecuteProgram(program_id="p", inputs={"q": "new"}), ctx("e1")),  # its id reused
        (ExecuteProgram(program_id="p", inputs={"q": "?"}), ctx("e2")),  # new
        (ExecuteProgram(program_id="nope", inputs={"q": "?"}), ctx("e3")),  # rejected
    ]
    redelivered, reused, new, rejected = handle_many(app, items)
    assert redelivered == stored
    assert isinstance(reused, Outcome)
    assert reused.data["errors"][0]["type"] == "id_reused"
    assert isinstance(new, ExecutionPlan)
    assert new.execution_id == "e2"
    assert isinstance(rejected, Outcome)
    assert rejected.result_type == "CommandRejected"
    assert rejected.data["errors"][0]["loc"] == ["program_id"]
