"""Bearer-token auth and read-only verbs, checked without any database behind the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dspyops.api.main import create_app
from dspyops.settings import get_settings

TOKEN = "s3cret-token"
# Nothing listens there: a request that got past auth would fail, not pass silently.
NOWHERE = "postgresql://postgres@127.0.0.1:1/none"


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = get_settings().model_copy(
        update={
            "api_token": TOKEN,
            "database_url": NOWHERE,
            "kafka_bootstrap_servers": "127.0.0.1:1",
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "path",
    [
        "/programs",
        "/programs/p",
        "/programs/p/versions",
        "/programs/p/versions/1",
        "/programs/p/schema",
        "/programs/p/executions",
        "/programs/p/metrics",
        "/programs/p/audit",
        "/programs/p/serving",
        "/programs/p/serving/history",
        "/executions/e",
        "/datasets",
        "/datasets/d",
        "/optimizations",
        "/optimizations/o",
        "/evaluations",
        "/evaluations/e",
        "/metrics",
    ],
)
def test_every_route_but_health_needs_the_token(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in missing.json()["detail"]
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text


def test_health_needs_no_token_and_reports_what_is_down(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["postgres"] is False
    assert TOKEN not in response.text


@pytest.mark.parametrize("verb", ["POST", "PUT", "DELETE", "PATCH"])
def test_no_write_verbs(client: TestClient, verb: str) -> None:
    for path in ("/programs", "/programs/p", "/health", "/metrics"):
        assert client.request(verb, path).status_code == 405


def test_openapi_declares_bearer_auth_and_no_secrets(client: TestClient) -> None:
    document = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert document.status_code == 200
    assert TOKEN not in document.text
    assert "HTTPBearer" in document.json()["components"]["securitySchemes"]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_documents_need_the_token_too(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
