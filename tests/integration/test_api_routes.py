"""Every read route against real PostgreSQL, with projections fed by real stored events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dspyops.api.main import create_app
from dspyops.bootstrap import open_store
from dspyops.projections.projector import Projector
from dspyops.settings import Settings
from tests.support.read_story import (
    COST_USD,
    PROVENANCE,
    bulk_executions,
    schemas,
    seed_story,
)

BULK = 230


@pytest.fixture(scope="module")
def world(settings: Settings, database_url: str) -> Iterator[dict[str, Any]]:
    """A seeded store projected once; the routes only read it."""
    suffix = uuid.uuid4().hex[:10]
    es, rs = f"test_es_{suffix}", f"test_rd_{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        story = seed_story(store)
        bulk_executions(store, "sum", BULK, batch=50)
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        projector.catch_up()
        projector.close()
        store.close()
        configured = settings.model_copy(
            update={
                "database_url": database_url,
                "event_store_schema": es,
                "read_model_schema": rs,
                "api_token": None,
            }
        )
        yield {"settings": configured, "story": story}


@pytest.fixture(scope="module")
def client(world: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(world["settings"])) as test_client:
        yield test_client


def pages(client: TestClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get(path, params=query).json()
        found.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_programs_list_filters_and_one(client: TestClient) -> None:
    ids = [p["program_id"] for p in client.get("/programs").json()["items"]]
    assert ids == ["sum", "qa"]
    assert [p["program_id"] for p in client.get("/programs?status=deployed").json()["items"]] == [
        "qa"
    ]
    assert [p["program_id"] for p in client.get("/programs?name=SUMM").json()["items"]] == ["sum"]
    assert client.get("/programs?name=%25").json()["items"] == []
    qa = client.get("/programs/qa").json()
    assert qa["status"] == "deployed"
    assert (qa["latest_version"], qa["deployed_version"]) == (3, 1)
    assert "lm" not in qa
    assert qa["budget"] is None
    # production is the deployed version; staging was moved to v3, canary removed.
    assert qa["aliases"] == {"production": 1, "staging": 3}
    summarize = client.get("/programs/sum").json()
    assert summarize["budget"] == {"usd_per_day": 2.5, "executions_per_minute": None}
    (budget_set,) = [
        e
        for e in client.get("/programs/sum/audit").json()["items"]
        if e["event_type"] == "BudgetSet"
    ]
    assert budget_set["actor"] == "dana"
    assert budget_set["changes"] == {
        "budget": {"before": None, "after": {"usd_per_day": 2.5, "executions_per_minute": None}},
        "reason": {"before": None, "after": "pilot"},
    }


def test_alias_changes_are_audited_with_actor_and_reason(client: TestClient) -> None:
    assert client.get("/programs/sum").json()["aliases"] == {}
    entries = [
        e
        for e in reversed(client.get("/programs/qa/audit", params={"limit": 100}).json()["items"])
        if e["event_type"] in {"AliasSet", "AliasRemoved"}
    ]
    assert [(e["event_type"], e["actor"], e["changes"]) for e in entries] == [
        (
            "AliasSet",
            "frank",
            {
                "aliases": {"before": {"production": 1}, "after": {"production": 1, "staging": 2}},
                "reason": {"before": None, "after": "new demos"},
            },
        ),
        (
            "AliasSet",
            "frank",
            {
                "aliases": {
                    "before": {"production": 1, "staging": 2},
                    "after": {"production": 1, "staging": 2, "canary": 3},
                }
            },
        ),
        (
            "AliasSet",
            "gina",
            {
                "aliases": {
                    "before": {"production": 1, "staging": 2, "canary": 3},
                    "after": {"production": 1, "staging": 3, "canary": 3},
                },
                "reason": {"before": None, "after": "one-word answers"},
            },
        ),
        (
            "AliasRemoved",
            "gina",
            {
                "aliases": {
                    "before": {"production": 1, "staging": 3, "canary": 3},
                    "after": {"production": 1, "staging": 3},
                },
                "reason": {"before": None, "after": "seen enough"},
            },
        ),
    ]


def test_serving_history_and_what_served_at_each_change(client: TestClient) -> None:
    history = [c for page in pages(client, "/programs/qa/serving/history", limit=3) for c in page]
    changes = list(reversed(history))
    assert [(c["kind"], c["alias"], c["previous_version"], c["version"]) for c in changes] == [
        ("Deployed", "production", None, 1),
        ("Deployed", "production", 1, 2),
        ("RolledBack", "production", 2, 1),
        ("AliasSet", "staging", None, 2),
        ("AliasSet", "canary", None, 3),
        ("AliasSet", "staging", 2, 3),
        ("AliasRemoved", "canary", 3, None),
    ]
    assert [(c["actor"], c["reason"]) for c in changes] == [
        ("alice", None),
        ("carol", None),
        ("alice", None),
        ("frank", "new demos"),
        ("frank", None),
        ("gina", "one-word answers"),
        ("gina", "seen enough"),
    ]
    assert all(c["command_id"] and c["correlation_id"] for c in changes)
    assert changes[-1]["state"] == {"aliases": {"production": 1, "staging": 3}, "splits": {}}
    # At the instant of each change, the state after it (the last change at that instant).
    for change in changes:
        at = change["occurred_at"]
        served = client.get("/programs/qa/serving", params={"at": at}).json()
        last_then = [c for c in changes if c["occurred_at"] == at][-1]
        assert served["change"]["position"] == last_then["position"]
        assert {"aliases": served["aliases"], "splits": served["splits"]} == last_then["state"]
    now = client.get("/programs/qa/serving").json()
    assert now["weights"] == {"production": {"1": 100.0}, "staging": {"3": 100.0}}
    assert now["change"] == changes[-1]
    before = client.get("/programs/qa/serving", params={"at": "2000-01-01T00:00:00Z"}).json()
    assert (before["aliases"], before["change"]) == ({}, None)
    # A program never deployed: nothing served, no change.
    assert client.get("/programs/sum/serving/history").json()["items"] == []
    assert client.get("/programs/sum/serving").json()["change"] is None


def test_programs_pagination(client: TestClient) -> None:
    got = pages(client, "/programs", limit=1)
    assert [len(p) for p in got] == [1, 1]
    assert [p[0]["program_id"] for p in got] == ["sum", "qa"]


def test_versions_and_compiled_state(client: TestClient) -> None:
    versions = client.get("/programs/qa/versions").json()
    assert [(v["number"], v["source"], v["deployed"]) for v in versions] == [
        (1, "registered", True),
        (2, "optimized", False),
        (3, "updated", False),
    ]
    assert versions[1]["optimized_score"] == 0.8
    assert [v["dataset_version"] for v in versions] == [None, 1, None]
    v2 = client.get("/programs/qa/versions/2").json()
    assert v2["state"] == {"demos": []}
    assert v2["optimization_id"] == "opt1"
    v3 = client.get("/programs/qa/versions/3").json()
    assert (v3["instructions"], v3["based_on"], v3["state"]) == (
        "Answer in one word.",
        2,
        {"demos": []},
    )


def test_schema_of_inputs_and_outputs(client: TestClient) -> None:
    body = client.get("/programs/qa/schema").json()
    assert body["version"] == 1
    assert set(body["input_schema"]["properties"]) == {"question", "context"}
    assert set(body["output_schema"]["properties"]) == {"answer", "confidence"}
    assert client.get("/programs/qa/schema?version=3").json()["version"] == 3


def test_program_executions_filters_and_one(client: TestClient, world: dict[str, Any]) -> None:
    story = world["story"]
    items = client.get("/programs/qa/executions?limit=200").json()["items"]
    assert len(items) == len(story["succeeded"]) + len(story["failed"])
    failed = client.get("/programs/qa/executions?status=failed").json()["items"]
    assert {e["execution_id"] for e in failed} == set(story["failed"])
    assert failed[0]["error"]["code"] == "lm_error"
    # A failure records the tokens it was billed for (these, none) and its cost (unknown).
    assert failed[0]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert failed[0]["cost_usd"] is None
    one = client.get(f"/executions/{story['succeeded'][0]}").json()
    assert one["outputs"] == {"answer": "a", "confidence": 0.5}
    assert one["usage"]["total_tokens"] == 15
    assert one["offline"] is True
    assert one["cost_usd"] == pytest.approx(COST_USD)
    assert "model" not in one
    first = items[-1]["requested_at"]
    later = client.get("/programs/qa/executions", params={"since": first, "limit": 200})
    assert len(later.json()["items"]) == len(items)
    none = client.get("/programs/qa/executions", params={"until": first}).json()["items"]
    assert none == []
    # A bound in the middle keeps exactly the executions on its side (newest first).
    times = sorted({e["requested_at"] for e in items})
    assert len(times) > 1, "the story's executions need distinct request times"
    middle = times[len(times) // 2]
    newer = client.get("/programs/qa/executions", params={"since": middle, "limit": 200})
    expected = [e["execution_id"] for e in items if e["requested_at"] >= middle]
    assert [e["execution_id"] for e in newer.json()["items"]] == expected
    assert 0 < len(expected) < len(items)
    assert client.get("/programs/qa/executions?version=2").json()["items"] == []


def test_executions_pagination_has_no_duplicates_or_gaps(client: TestClient) -> None:
    got = pages(client, "/programs/sum/executions", limit=37)
    ids = [e["execution_id"] for page in got for e in page]
    assert len(ids) == BULK
    assert set(ids) == {f"sum-x{n}" for n in range(BULK)}
    assert len(got) == -(-BULK // 37)
    failed = [
        e
        for page in pages(client, "/programs/sum/executions", status="failed", limit=7)
        for e in page
    ]
    assert {e["execution_id"] for e in failed} == {f"sum-x{n}" for n in range(BULK) if n % 7 == 6}


def test_execution_stats(client: TestClient) -> None:
    body = client.get("/programs/qa/metrics?bucket=day").json()
    overall = body["overall"]
    assert (overall["count"], overall["succeeded"], overall["failed"]) == (10, 8, 2)
    assert overall["success_rate"] == pytest.approx(0.8)
    assert overall["tokens_per_execution"] == pytest.approx(15 * 8 / 10)
    # The 8 successes are priced, the 2 failures are not: a partial sum that says so.
    assert overall["cost_usd"] == pytest.approx(8 * COST_USD)
    assert overall["unpriced"] == 2
    assert body["by_version"][0]["cost_usd"] == pytest.approx(8 * COST_USD)
    assert overall["latency_p50_ms"] is not None
    assert overall["latency_p95_ms"] >= overall["latency_p50_ms"]
    assert [v["version"] for v in body["by_version"]] == [1]  # rolled back to v1
    # Three feedback, two of them scored (1.0 and 0.5); still 10 executions counted.
    version = body["by_version"][0]
    assert (version["count"], version["feedback_count"], version["feedback_scored"]) == (10, 3, 2)
    assert version["feedback_score_mean"] == pytest.approx(0.75)
    assert overall["feedback_count"] == 3
    assert sum(b["feedback_count"] for b in body["by_time"]) == 3
    assert sum(b["count"] for b in body["by_time"]) == 10
    sums = client.get("/programs/sum/metrics").json()["overall"]
    assert sums["count"] == BULK
    empty = client.get("/programs/qa/metrics?until=2000-01-01T00:00:00Z").json()
    assert empty["overall"]["count"] == 0
    assert empty["overall"]["feedback_score_mean"] is None
    assert empty["by_version"] == []
    assert sums["feedback_count"] == 0


def test_an_executions_feedback_is_listed_and_audited(
    client: TestClient, world: dict[str, Any]
) -> None:
    story = world["story"]
    one = client.get(f"/executions/{story['succeeded'][0]}").json()
    assert [(f["number"], f["score"], f["label"]) for f in one["feedback"]] == [
        (1, 1.0, "good"),
        (2, 0.5, None),
    ]
    second = one["feedback"][1]
    assert second["corrected_outputs"] == {"answer": "a", "confidence": 1.0}
    assert (second["comment"], second["actor"]) == ("right, but unsure", "erin")
    failed = client.get(f"/executions/{story['failed'][0]}").json()
    assert [f["corrected_outputs"] for f in failed["feedback"]] == [
        {"answer": "b", "confidence": 1.0}
    ]
    assert client.get(f"/executions/{story['failed'][1]}").json()["feedback"] == []
    entries = [e for page in pages(client, "/programs/qa/audit", limit=50) for e in page]
    audited = [e for e in entries if e["event_type"] == "FeedbackRecorded"]
    assert [(e["aggregate_kind"], e["actor"]) for e in audited] == [("execution", "erin")] * 3
    newest = audited[0]
    assert newest["aggregate_id"] == story["failed"][0]
    assert newest["changes"]["feedback"]["after"] == {
        "number": 1,
        "corrected_outputs": {"answer": "b", "confidence": 1.0},
    }


def test_executions_filtered_by_their_latest_scored_feedback(
    client: TestClient, world: dict[str, Any]
) -> None:
    story = world["story"]

    def ids(**params: Any) -> list[str]:
        body = client.get("/programs/qa/executions", params={"limit": 200, **params}).json()
        return [e["execution_id"] for e in body["items"]]

    # Scored 1.0, then 0.5: the latest score is the one filtered on.
    assert ids(min_score=0.5) == [story["succeeded"][0]]
    assert ids(min_score=0.6) == []
    assert ids(max_score=0.5, min_score=0.5) == [story["succeeded"][0]]
    # Executions with no scored feedback (the failed one was only corrected) are left out.
    assert ids(max_score=1.0) == [story["succeeded"][0]]
    assert len(ids()) > 1


def test_datasets(client: TestClient) -> None:
    items = client.get("/datasets").json()["items"]
    assert [(d["dataset_id"], d["size"]) for d in items] == [("ds", 20)]
    one = client.get("/datasets/ds").json()
    assert one["train_size"] + one["dev_size"] == 20


def test_dataset_examples_page_in_the_order_they_were_added(client: TestClient) -> None:
    examples = [item for page in pages(client, "/datasets/ds/examples", limit=7) for item in page]
    assert [e["number"] for e in examples] == list(range(1, 21))
    assert {(e["dataset_version"], e["source_execution_id"]) for e in examples} == {(1, None)}
    dev = client.get("/datasets/ds/examples", params={"split": "dev", "limit": 200}).json()
    one = client.get("/datasets/ds").json()
    assert len(dev["items"]) == one["dev_size"]
    assert {e["split"] for e in dev["items"]} <= {"dev"}
    assert client.get("/datasets/ds/examples", params={"version": 1}).json()["items"]
    assert client.get("/datasets/nope/examples").status_code == 404
    assert client.get("/datasets/ds/examples", params={"split": "test"}).status_code == 422


def test_optimizations_and_evaluations(client: TestClient) -> None:
    opts = client.get("/optimizations?program_id=qa").json()["items"]
    assert [(o["optimization_id"], o["status"], o["version_created"]) for o in opts] == [
        ("opt1", "completed", 2)
    ]
    assert client.get("/optimizations?status=failed").json()["items"] == []
    opt1 = client.get("/optimizations/opt1").json()
    assert opt1["best_score"] == 0.5
    assert (opt1["dataset_version"], opt1["provenance"]) == (1, PROVENANCE.model_dump())
    evaluation = client.get("/evaluations/ev1").json()
    assert (evaluation["score"], evaluation["version"], evaluation["errored"]) == (0.5, 1, 1)
    assert evaluation["per_example"][1]["error"] == "lm_error"
    # Completed without provenance (as before it was recorded): null.
    assert (evaluation["dataset_version"], evaluation["provenance"]) == (1, None)
    assert [e["evaluation_id"] for e in client.get("/evaluations").json()["items"]] == ["ev1"]
    assert client.get("/evaluations?program_id=sum").json()["items"] == []


def test_audit_trail_with_before_and_after(client: TestClient) -> None:
    entries = [e for page in pages(client, "/programs/qa/audit", limit=3) for e in page]
    events = [(e["aggregate_kind"], e["event_type"]) for e in reversed(entries)]
    assert events[0] == ("program", "Registered")
    assert ("program", "Deployed") in events
    assert ("optimization", "Progressed") in events
    assert ("evaluation", "Completed") in events
    first, deployed = [e for e in reversed(entries) if e["event_type"] == "Deployed"]
    assert first["changes"]["status"] == {"before": "optimized", "after": "deployed"}
    assert first["changes"]["deployed_version"] == {"before": None, "after": 1}
    assert deployed["actor"] == "carol"
    assert deployed["changes"] == {"deployed_version": {"before": 1, "after": 2}}
    assert deployed["command_id"]
    assert deployed["correlation_id"].startswith("corr-")
    rolled = next(e for e in entries if e["event_type"] == "RolledBack")
    assert rolled["changes"] == {"deployed_version": {"before": 2, "after": 1}}
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions, reverse=True)
    assert len(set(positions)) == len(positions)


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/programs/nope", "program 'nope' not found"),
        ("/programs/qa/versions/9", "version 9 of program 'qa' not found"),
        ("/programs/nope/versions", "program 'nope' not found"),
        ("/programs/nope/executions", "program 'nope' not found"),
        ("/programs/nope/metrics", "program 'nope' not found"),
        ("/programs/nope/audit", "program 'nope' not found"),
        ("/programs/nope/serving", "program 'nope' not found"),
        ("/programs/nope/serving/history", "program 'nope' not found"),
        ("/programs/nope/schema", "program 'nope' not found"),
        ("/programs/qa/schema?version=9", "version 9 of program 'qa' not found"),
        ("/executions/nope", "execution 'nope' not found"),
        ("/datasets/nope", "dataset 'nope' not found"),
        ("/optimizations/nope", "optimization 'nope' not found"),
        ("/evaluations/nope", "evaluation 'nope' not found"),
    ],
)
def test_not_found_has_a_clear_body(client: TestClient, path: str, detail: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": detail}


def test_bad_cursor_is_rejected(client: TestClient) -> None:
    response = client.get("/programs?cursor=!!notacursor")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_health_and_prometheus_metrics(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert (body["status"], body["postgres"], body["kafka"]) == ("ok", True, True)
    assert body["projection"]["lag"] == 0
    assert body["projection"]["position"] == body["projection"]["head"] > 0
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.text)
        for s in family.samples
    }
    assert samples[("dspyops_projection_lag_events", ())] == 0
    assert samples[("dspyops_read_model_executions", (("status", "succeeded"),))] > 0
    health_ok = (("method", "GET"), ("route", "/health"), ("status", "200"))
    assert samples[("dspyops_api_requests_total", health_ok)] >= 1
    latency = (("le", "+Inf"), ("method", "GET"), ("route", "/health"))
    assert samples[("dspyops_api_request_duration_seconds_bucket", latency)] >= 1
    # The worker's and projector's metrics are theirs: not served by the API.
    assert not any(name.startswith("dspyops_executions_") for name, _ in samples)


def test_openapi_lists_only_get(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {verb for ops in paths.values() for verb in ops} == {"get"}
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("verb", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/programs", "/programs/qa", "/executions/x", "/datasets"])
def test_write_verbs_answer_405(client: TestClient, verb: str, path: str) -> None:
    assert client.request(verb, path).status_code == 405


def test_token_opens_every_route_and_health_needs_none(world: dict[str, Any]) -> None:
    guarded = world["settings"].model_copy(update={"api_token": "t0ken"})
    with TestClient(create_app(guarded)) as client:
        assert client.get("/programs/qa").status_code == 401
        ok = client.get("/programs/qa", headers={"Authorization": "Bearer t0ken"})
        assert ok.status_code == 200
        assert ok.json()["program_id"] == "qa"
        metrics = client.get("/metrics", headers={"Authorization": "Bearer t0ken"})
        assert metrics.status_code == 200
        assert client.get("/health").status_code == 200


def test_read_models_not_built_yet_is_a_clear_503(world: dict[str, Any]) -> None:
    missing = world["settings"].model_copy(update={"read_model_schema": "test_not_built_here"})
    with TestClient(create_app(missing)) as client:
        response = client.get("/programs")
        assert response.status_code == 503
        assert "dspyops projector" in response.json()["detail"]
        projection = client.get("/health").json()["projection"]
        assert projection["built"] is False
        assert projection["lag"] == projection["head"] > 0
