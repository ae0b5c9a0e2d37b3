"""`/programs/{id}/serving` and `/serving/history`, with the views replaced by fakes: the
instant asked is parsed (an offset is required), defaults to now, and the answer is the
state of the change in force then, or nothing served yet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dspyops.api import views
from dspyops.api.deps import get_db
from dspyops.api.main import create_app
from dspyops.settings import get_settings

# Nothing listens there: a query that got past the fakes would fail, not pass silently.
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

CHANGE: dict[str, Any] = {
    "position": 42,
    "kind": "AliasSet",
    "alias": "canary",
    "previous_version": None,
    "version": 3,
    "state": {
        "aliases": {"production": 2, "canary": 3},
        "splits": {"canary": {"3": 20, "2": 80}},
    },
    "reason": "try v3",
    "actor": "frank",
    "command_id": "c-1",
    "correlation_id": "corr-1",
    "occurred_at": T0,
}


class Fakes:
    def __init__(self) -> None:
        self.asked: list[datetime] = []
        self.change: dict[str, Any] | None = CHANGE
        self.history_args: dict[str, Any] = {}

    async def program(self, conn: Any, schema: str, program_id: str) -> dict[str, Any] | None:
        return None if program_id == "nope" else {"program_id": program_id}

    async def serving_at(
        self, conn: Any, schema: str, program_id: str, at: datetime
    ) -> dict[str, Any] | None:
        self.asked.append(at)
        return self.change

    async def serving_history(
        self, conn: Any, schema: str, program_id: str, **page: Any
    ) -> views.PageRows:
        self.history_args = {"program_id": program_id, **page}
        return views.PageRows([CHANGE], "42")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    found = Fakes()
    for name in ("program", "serving_at", "serving_history"):
        monkeypatch.setattr(views, name, getattr(found, name))
    return found


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    settings = get_settings().model_copy(
        update={"api_token": None, "database_url": NOWHERE, "kafka_bootstrap_servers": "x:1"}
    )
    app = create_app(settings)

    async def no_db() -> AsyncIterator[None]:
        yield None

    app.dependency_overrides[get_db] = no_db
    with TestClient(app) as test_client:
        yield test_client


def test_at_an_instant_answers_the_state_of_the_change_in_force(
    client: TestClient, fakes: Fakes
) -> None:
    answer = client.get("/programs/qa/serving", params={"at": "2026-05-01T14:30:00+02:00"})
    assert answer.status_code == 200, answer.text
    # The offset is kept: 14:30 at +02:00 is 12:30 UTC.
    assert fakes.asked == [datetime(2026, 5, 1, 12, 30, tzinfo=UTC)]
    body = answer.json()
    assert body["program_id"] == "qa"
    assert body["aliases"] == {"production": 2, "canary": 3}
    assert body["splits"] == {"canary": {"3": 20.0, "2": 80.0}}
    # An alias without a split serves its one version at 100%.
    assert body["weights"] == {"production": {"2": 100.0}, "canary": {"3": 20.0, "2": 80.0}}
    assert body["change"]["kind"] == "AliasSet"
    assert (body["change"]["actor"], body["change"]["command_id"]) == ("frank", "c-1")
    assert body["change"]["reason"] == "try v3"


def test_without_at_the_instant_is_now(client: TestClient, fakes: Fakes) -> None:
    before = datetime.now(UTC)
    answer = client.get("/programs/qa/serving")
    assert answer.status_code == 200, answer.text
    (asked,) = fakes.asked
    assert before <= asked <= datetime.now(UTC)
    assert datetime.fromisoformat(answer.json()["at"]) == asked


def test_before_any_change_nothing_served_yet(client: TestClient, fakes: Fakes) -> None:
    fakes.change = None
    body = client.get("/programs/qa/serving", params={"at": "2020-01-01T00:00:00Z"}).json()
    assert (body["aliases"], body["splits"], body["weights"], body["change"]) == ({}, {}, {}, None)


@pytest.mark.parametrize("path", ["/programs/nope/serving", "/programs/nope/serving/history"])
def test_an_unknown_program_is_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "program 'nope' not found"}


@pytest.mark.parametrize(
    "at",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        # RFC 3339 needs the offset: a local time is ambiguous.
        "2026-05-01T12:00:00",
    ],
)
def test_a_bad_at_is_422_at_the_field(client: TestClient, fakes: Fakes, at: str) -> None:
    answer = client.get("/programs/qa/serving", params={"at": at})
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", "at"]]
    assert fakes.asked == []


def test_history_is_a_page_of_changes(client: TestClient, fakes: Fakes) -> None:
    answer = client.get("/programs/qa/serving/history", params={"limit": 5, "cursor": "99"})
    assert answer.status_code == 200, answer.text
    assert fakes.history_args == {"program_id": "qa", "limit": 5, "cursor": "99"}
    page = answer.json()
    assert page["next_cursor"] == "42"
    (change,) = page["items"]
    assert change["state"]["aliases"] == {"production": 2, "canary": 3}
    assert (change["actor"], change["command_id"], change["reason"]) == ("frank", "c-1", "try v3")
