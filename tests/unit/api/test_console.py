"""The console's rules that need no database: the token form and cookie, where a login may
send you, the one write-free POST, static files, and the pure layout helpers."""

from __future__ import annotations

import html
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dspyops.api.dead_letters import DeadLetters, reason_of
from dspyops.api.deps import get_db
from dspyops.api.main import create_app
from dspyops.api.ui.auth import COOKIE, safe_next
from dspyops.api.ui.charts import from_rows
from dspyops.api.ui.columns import (
    EXECUTION_COLUMNS,
    PROGRAM_COLUMNS,
    SERVING_COLUMNS,
    SPLIT_COLUMNS,
    compare_columns,
    online_evaluation,
)
from dspyops.api.ui.compare import newest_pair, side_by_side
from dspyops.api.ui.health import reasons_caption
from dspyops.api.ui.programs import auto_bucket, comparison_table
from dspyops.api.ui.render import DASH
from dspyops.api.ui.runs import failures_first, ran_with
from dspyops.api.ui.tables import Table
from dspyops.api.ui.trace import span_count, trace_view
from dspyops.settings import get_settings
from tests.support.console_stack import trace_tree

TOKEN = "s3cret-token"
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"
DB_WAIT_S = 0.2  # DSPYOPS_API_DB_WAIT_S: a request to NOWHERE answers 503 after that


def app_client(token: str | None) -> TestClient:
    settings = get_settings().model_copy(
        update={
            "api_token": token,
            "database_url": NOWHERE,
            "kafka_bootstrap_servers": "127.0.0.1:1",
            "api_db_wait_s": DB_WAIT_S,
        }
    )
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with app_client(TOKEN) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "path",
    ["/ui/programs", "/ui/programs/p", "/ui/executions/e", "/ui/health", "/ui/live/evaluations"],
)
def test_pages_send_a_visitor_without_the_token_to_the_login_form(
    client: TestClient, path: str
) -> None:
    for cookie in (None, "wrong"):
        client.cookies.clear()
        if cookie:
            client.cookies.set(COOKIE, cookie)
        answer = client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=%2Fui%2F")
        assert TOKEN not in answer.text


def test_the_right_token_sets_a_strict_http_only_cookie_for_the_console_only(
    client: TestClient,
) -> None:
    answer = client.post("/ui/login", data={"token": TOKEN, "next": "/ui/health"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/health"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    for attribute in ("HttpOnly", "Path=/ui", "SameSite=strict"):
        assert attribute in cookie
    # Plain HTTP here: a Secure cookie would never come back.
    assert "Secure" not in cookie


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x", "s3cret-tokeñ"])
def test_a_wrong_token_is_refused_with_the_form_again_and_no_cookie(
    client: TestClient, token: str
) -> None:
    answer = client.post("/ui/login", data={"token": token})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "That token was refused." in answer.text


def test_a_login_posted_from_another_site_is_refused(client: TestClient) -> None:
    answer = client.post(
        "/ui/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_logout_clears_the_cookie(client: TestClient) -> None:
    answer = client.post("/ui/logout")
    assert answer.status_code == 303
    assert answer.headers["set-cookie"].startswith(f'{COOKIE}="";')


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/ui/programs/qa?bucket=day", "/ui/programs/qa?bucket=day"),
        (None, "/ui/programs"),
        ("https://evil.example/ui/", "/ui/programs"),
        ("//evil.example/ui/", "/ui/programs"),
        ("/ui/\\evil", "/ui/programs"),
        ("/programs", "/ui/programs"),
    ],
)
def test_after_login_only_console_paths(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_without_a_token_the_login_form_steps_aside() -> None:
    with app_client(None) as client:
        answer = client.get("/ui/login?next=/ui/health")
        assert (answer.status_code, answer.headers["location"]) == (303, "/ui/health")


def test_static_files_need_no_token_and_the_library_keeps_its_license(client: TestClient) -> None:
    assert client.get("/ui/static/console.js").status_code == 200
    license_text = client.get("/ui/static/vendor/uplot/LICENSE")
    assert "MIT License" in license_text.text
    assert "uPlot" in client.get("/ui/static/vendor/uplot/uPlot.iife.min.js").text


@pytest.mark.parametrize("verb", ["PUT", "DELETE", "PATCH", "POST"])
def test_pages_take_no_write_verb(client: TestClient, verb: str) -> None:
    for path in ("/ui/programs", "/ui/programs/p", "/ui/health"):
        assert client.request(verb, path).status_code == 405


def test_the_console_stays_out_of_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert not [path for path in document["paths"] if path.startswith("/ui")]


def test_the_trace_view_places_each_span_on_the_execution_timeline() -> None:
    view = trace_view(trace_tree())
    assert view is not None
    assert span_count(view) == 4
    assert (view.bar_x, view.bar_width) == (0, 1000)
    retrieval, predictor = view.children
    assert (retrieval.bar_x, retrieval.bar_width) == (25, 100)
    assert retrieval.retrieved == "docs v2: d1, d7"
    (lm,) = predictor.children
    assert (lm.bar_x, lm.bar_width, lm.tokens, lm.model) == (150, 750, 15, "offline/echo")
    assert trace_view(None) is None


def test_failures_come_first_then_the_lowest_scores() -> None:
    examples: list[dict[str, Any]] = [
        {"index": 0, "score": 1.0},
        {"index": 1, "score": 0.2},
        {"index": 2, "score": 0.0, "error": "lm_error"},
        {"index": 3, "score": 0.0},
    ]
    assert [e["index"] for e in failures_first(examples)] == [2, 3, 1, 0]


def test_the_bucket_fits_the_span_of_executions() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert auto_bucket(None) == "hour"
    assert auto_bucket((start, start + timedelta(hours=1))) == "minute"
    assert auto_bucket((start, start + timedelta(days=2))) == "hour"
    assert auto_bucket((start, start + timedelta(days=30))) == "day"
    assert auto_bucket((start, start + timedelta(days=400))) == "week"


def test_a_chart_has_a_point_per_row_and_gaps_where_a_value_is_missing() -> None:
    rows: list[dict[str, Any]] = [{"number": 1, "s": None}, {"number": 2, "s": 0.5}]
    chart = from_rows("c", "C", "version", rows, lambda r: float(r["number"]), [("s", "s", str)])
    assert chart.points == 2
    assert chart.spec()["series"] == [{"label": "s", "values": [None, 0.5]}]
    assert chart.table_rows() == [("v1", ["None"]), ("v2", ["0.5"])]


def test_traffic_and_route_columns_say_what_serves_and_why() -> None:
    splits = {
        "production": {
            "arms": [{"version": 2, "percent": 90}, {"version": 3, "percent": 10}],
            "guard": None,
        }
    }
    traffic = next(c for c in PROGRAM_COLUMNS if c.label == "Traffic")
    route = next(c for c in EXECUTION_COLUMNS if c.label == "Route")
    assert traffic.cell({"splits": splits}).text == "production: v2 90 % / v3 10 %"
    assert traffic.cell({"splits": {}}).text == DASH
    split_route = {"alias": "production", "arm": 3, "bucket": 9400, "reason": "..."}
    assert route.cell({"route": split_route}).text == "production split → v3"
    assert route.cell({"route": {"alias": "staging", "arm": None}}).text == "staging"
    assert route.cell({"route": None}).text == DASH


def stats_row(version: int, succeeded: int, failed: int, latencies: list[float]) -> dict[str, Any]:
    mean = sum(latencies) / len(latencies)
    var = sum((x - mean) ** 2 for x in latencies) / (len(latencies) - 1)
    return {
        "k": version,
        "succeeded": succeeded,
        "failed": failed,
        "latency_n": len(latencies),
        "latency_mean_ms": mean,
        "latency_var": var,
        "feedback_scored": 0,
        "feedback_score_mean": None,
        "feedback_score_var": None,
    }


def test_the_comparison_table_sets_each_version_against_the_serving_one() -> None:
    rows = [stats_row(1, 9, 1, [10.0, 20.0, 30.0]), stats_row(3, 4, 0, [5.0, 7.0, 9.0])]
    table = comparison_table(1, rows)
    (row,) = table.rows
    texts = [cell.text for cell in table.cells(row)]
    assert texts[:2] == ["v3", "v1"]
    assert texts[2].startswith("+10.0 % [")
    assert texts[3].startswith("-13.0 ms [")
    assert texts[4] == DASH
    # Without a serving version (or its executions) there is nothing to compare with.
    assert comparison_table(None, rows).rows == []
    assert comparison_table(2, rows).rows == []


def test_splits_and_serving_changes_read_as_what_serves() -> None:
    split = {
        "alias": "production",
        "arms": [{"version": 1, "percent": 90}, {"version": 3, "percent": 10}],
        "guard": {"max_error_rate": 0.2, "window": 50},
    }
    assert [c.text for c in Table("", SPLIT_COLUMNS, [split]).cells(split)] == [
        "production",
        "v1 90 % / v3 10 %",
        "over 20.0% failed of the last 50",
    ]
    splits = {"production": {"1": 90, "3": 10}}
    state = {"aliases": {"production": 1, "staging": 3}, "splits": splits}
    served = next(c for c in SERVING_COLUMNS if c.label == "Serving after")
    assert served.cell({"state": state}).text == (
        "production → v1 (v1 90 % / v3 10 %); staging → v3"
    )
    assert served.cell({"state": {"aliases": {}, "splits": {}}}).text == "nothing"


def test_a_run_says_which_examples_it_took_and_what_it_ran_with() -> None:
    provenance = {
        "dspy_version": "3.4.1",
        "dspyops_version": "0.1.0",
        "optimizer_config": {"k": 16},
        "seed": 0,
        "lm_profiles": [
            {
                "profile": "default",
                "model": "openai/gpt-4o-mini",
                "offline": False,
                "response_models": ["gpt-4o-mini-2024-07-18"],
            },
            {"profile": "judge", "model": "offline", "offline": True, "response_models": []},
        ],
    }
    run = {"dataset_id": "ds", "dataset_version": 3, "config": {}, "provenance": provenance}
    assert dict(ran_with(run)) == {
        "Examples from": "ds v3",
        "dspy": "3.4.1",
        "dspyops": "0.1.0",
        "Optimizer config as used": '{"k": 16}',
        "Seed": "0",
        "Models": "default: openai/gpt-4o-mini, answered by gpt-4o-mini-2024-07-18; "
        "judge: offline (offline)",
    }
    # Runs recorded before runs were pinned, or not completed yet.
    older = {"dataset_id": "ds", "dataset_version": None, "config": None, "provenance": None}
    assert dict(ran_with(older)) == {
        "Examples from": "ds (unpinned)",
        "Provenance": "not recorded (recorded when a run completes)",
    }


def evaluation(run_id: str, version: int, position: int, **key: Any) -> dict[str, Any]:
    found = {"dataset_id": "ds", "dataset_version": 2, "metric": "exact_match", "examples": 4}
    return {"run_id": run_id, "version": version, "position": position, **found, **key}


def test_two_versions_pair_on_their_newest_evaluations_of_the_same_examples() -> None:
    older_a = evaluation("a1", 1, 10)
    newer_a = evaluation("a2", 1, 30, dataset_version=3)
    b = evaluation("b1", 2, 20)
    assert newest_pair([newer_a, older_a], [b]) == (older_a, b)
    # Both A runs pair with B: the newer one, whatever the order they come in.
    again_a = evaluation("a3", 1, 15)
    assert newest_pair([older_a, again_a], [b]) == (again_a, b)
    # Another metric, another number of examples (another split) or an unpinned run: no pair.
    for other in ({"metric": "f1"}, {"examples": 5}):
        assert newest_pair([evaluation("a", 1, 10, **other)], [b]) is None
    unpinned = {"dataset_version": None}
    assert (
        newest_pair([evaluation("a", 1, 10, **unpinned)], [evaluation("b", 2, 20, **unpinned)])
        is None
    )
    assert newest_pair([], [b]) is None


def test_side_by_side_pairs_examples_by_index_biggest_differences_first() -> None:
    a = [{"index": 0, "score": 1.0}, {"index": 1, "score": 0.5}, {"index": 2, "score": 0.0}]
    b: list[dict[str, Any]] = [
        {"index": 0, "score": 1.0, "outputs": {"answer": "x"}},
        {"index": 1, "score": 0.75},
        {"index": 2, "score": 1.0},
    ]
    rows = side_by_side(a, b)
    assert [(r["index"], r["diff"]) for r in rows] == [(2, 1.0), (1, 0.25), (0, 0.0)]
    columns = compare_columns(1, 2, with_inputs=False)
    cells = [c.text for c in Table("", columns, rows).cells(rows[-1])]
    assert cells == ["0", "1.000", "1.000", "+0.000", DASH, '{"answer": "x"}', DASH, DASH]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/ui/programs/qa/compare?a=0&b=2", "a: Input should be greater than or equal to 1"),
        ("/ui/optimizations?cursor=x", "cursor: String should match pattern"),
        ("/ui/programs/qa?bucket=year", "bucket: Input should be 'minute', 'hour'"),
        ("/ui/live/programs/qa/executions?after=-1", "after: Input should be greater than"),
    ],
)
def test_a_bad_parameter_on_a_page_gets_an_html_error_page(path: str, problem: str) -> None:
    async def no_database() -> AsyncIterator[None]:
        # Parameters are checked before a page runs: it never needs one here.
        yield None

    with app_client(None) as client:
        client.app.dependency_overrides[get_db] = no_database  # type: ignore[attr-defined]
        answer = client.get(path)
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert problem in html.unescape(answer.text)
        # The JSON routes keep FastAPI's 422 and its body.
        json_answer = client.get("/programs/qa/metrics?bucket=year")
        assert json_answer.status_code == 422
        assert json_answer.json()["detail"][0]["loc"] == ["query", "bucket"]


def test_a_database_the_api_cannot_reach_is_an_error_page_on_the_console() -> None:
    # After DSPYOPS_API_DB_WAIT_S (the pool's wait; 5 s by default). The JSON routes answer
    # the same in JSON.
    with app_client(None) as client:
        began = time.monotonic()
        answer = client.get("/ui/programs")
        assert time.monotonic() - began < 4  # the setting's 0.2 s, not the default 5 s
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("text/html")
        assert "the read database is unavailable" in answer.text


def test_a_dead_letter_reason_is_its_error_code() -> None:
    letter = {"type": "dspyops.deadletter.Undeliverable", "data": {"error": {"code": "not_json"}}}
    assert reason_of(json.dumps(letter).encode()) == "not_json"
    for unreadable in (None, b"", b"\xff", b"[]", b'{"data": {"error": {"code": 7}}}'):
        assert reason_of(unreadable) == "unreadable"


def test_the_dead_letter_reasons_say_whether_all_were_counted() -> None:
    assert reasons_caption(DeadLetters(total=3, read=3)) == "Reasons of all 3 dead letters"
    partial = DeadLetters(total=12_000, read=1_500, complete=False)
    assert reasons_caption(partial).startswith(
        "Reasons of 1,500 of 12,000 dead letters, counted so far"
    )


def test_online_evaluation_reads_as_a_sentence() -> None:
    assert online_evaluation(None) == DASH
    assert (
        online_evaluation({"judge": "grader", "alias": "production", "sample_percent": 12.5})
        == "12.5 % of executions judged by grader@production"
    )
    assert (
        online_evaluation({"judge": "grader", "alias": None, "sample_percent": 10.0})
        == "10 % of executions judged by grader"
    )
