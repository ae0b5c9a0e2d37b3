"""Serving history through Kafka, with the worker in this process, the projector and the
read API (issue 18, part 5).

A program with three versions: v1 deployed, then three changes (staging set on v2, v2
deployed, a rollback to v1). The test notes the time between commands (after a result,
before the next command), so each instant lies between two changes on the worker's own
clock: `serving?at=` answers nothing before the first, the state after each change
between it and the next, and the last after the last; the history lists every change
with the actor and the command id that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from dspyops.api.main import create_app
from dspyops.projections.projector import Projector
from tests.support.kafka import TopicReader, command
from tests.support.optimization import (
    SIGNATURE,
    Stack,
    send_and_wait,
    settings_for_test,
    stack,
)
from tests.support.worker_stack import drop_schema

__all__ = ["settings_for_test", "stack"]  # fixtures


def served(**aliases: int) -> dict[str, Any]:
    return {"aliases": aliases, "splits": {}}


async def test_serving_at_each_instant_and_the_history(stack: Stack, unique: str) -> None:
    settings, topics, _, _ = stack
    program_id = f"add-{unique}"
    sent: dict[str, str] = {}
    marks: list[datetime] = []

    async with TopicReader(settings.bootstrap_servers, topics.results) as results:

        async def ask(command_type: str, **data: Any) -> None:
            envelope = command(command_type, {"program_id": program_id, **data}, actor="ops")
            reply = (await send_and_wait(settings, topics, results, envelope))[envelope.id]
            assert reply["type"] != "dspyops.result.CommandRejected", reply
            sent[command_type + str(data.get("version", ""))] = envelope.id
            marks.append(datetime.now(UTC))

        await ask("RegisterProgram", name="add", signature=SIGNATURE)
        await ask("UpdateProgram", instructions="Answer with the number only.")
        await ask("DeployProgram", version=1)
        await ask("SetAlias", alias="staging", version=2, reason="shorter answers")
        await ask("DeployProgram", version=2)
        await ask("RollbackProgram", version=1)

    read_schema = f"read_{unique}"
    try:
        projector = Projector(
            settings.effective_database_url,
            event_store_schema=settings.event_store_schema,
            read_schema=read_schema,
        )
        try:
            projector.catch_up()
        finally:
            projector.close()
        app = create_app(
            settings.model_copy(update={"read_model_schema": read_schema, "api_token": None})
        )
        with TestClient(app) as client:
            answers = [
                client.get(f"/programs/{program_id}/serving", params={"at": at.isoformat()}).json()
                for at in marks[1:]
            ]
            now = client.get(f"/programs/{program_id}/serving").json()
            history = client.get(f"/programs/{program_id}/serving/history").json()["items"]
    finally:
        drop_schema(settings.effective_database_url, read_schema)

    # After the update (before the first deploy), then after each of the four changes.
    assert [{"aliases": a["aliases"], "splits": a["splits"]} for a in answers] == [
        served(),
        served(production=1),
        served(production=1, staging=2),
        served(production=2, staging=2),
        served(production=1, staging=2),
    ]
    assert answers[0]["change"] is None
    assert answers[3]["weights"] == {"production": {"2": 100.0}, "staging": {"2": 100.0}}
    assert now["aliases"] == {"production": 1, "staging": 2}
    assert now["change"]["kind"] == "RolledBack"

    changes = list(reversed(history))
    assert [(c["kind"], c["alias"], c["previous_version"], c["version"]) for c in changes] == [
        ("Deployed", "production", None, 1),
        ("AliasSet", "staging", None, 2),
        ("Deployed", "production", 1, 2),
        ("RolledBack", "production", 2, 1),
    ]
    assert [c["command_id"] for c in changes] == [
        sent["DeployProgram1"],
        sent["SetAlias2"],
        sent["DeployProgram2"],
        sent["RollbackProgram1"],
    ]
    assert {c["actor"] for c in changes} == {"ops"}
    assert [c["reason"] for c in changes] == [None, "shorter answers", None, None]
    # Each change happened between the marks around its command, on the same clock.
    for number, change in enumerate(changes, start=1):
        assert marks[number] < datetime.fromisoformat(change["occurred_at"]) < marks[number + 1]
