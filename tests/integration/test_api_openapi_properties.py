"""Property-based API tests generated from the OpenAPI document (schemathesis).

Every generated request must get an answer that is not a 5xx and that matches the
documented schema (status code, content type, body).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from dspyops.api.main import create_app
from dspyops.bootstrap import open_store
from dspyops.projections.projector import Projector
from dspyops.settings import Settings
from tests.support.read_story import schemas, seed_story

# Enough to reach filters, bad cursors and unknown ids on every path within ~20 s in all.
MAX_EXAMPLES = 25
# With a token set, schemathesis also checks that wrong or missing credentials get 401.
TOKEN = "property-token"


@pytest.fixture(scope="module")
def api_schema(settings: Settings, database_url: str) -> Iterator[object]:
    suffix = uuid.uuid4().hex[:10]
    es, rs = f"test_es_{suffix}", f"test_rd_{suffix}"
    with schemas(database_url, es, rs):
        store = open_store(database_url, es)
        seed_story(store)
        store.close()
        projector = Projector(database_url, event_store_schema=es, read_schema=rs)
        projector.catch_up()
        projector.close()
        app = create_app(
            settings.model_copy(
                update={
                    "database_url": database_url,
                    "event_store_schema": es,
                    "read_model_schema": rs,
                    "api_token": TOKEN,
                }
            )
        )
        yield schemathesis.openapi.from_asgi(
            "/openapi.json", app, headers={"Authorization": f"Bearer {TOKEN}"}
        )


# The document needs no database: paths are known at import, one test per path.
PATHS = sorted(create_app(Settings().model_copy(update={"api_token": TOKEN})).openapi()["paths"])


@pytest.mark.parametrize("path", PATHS)
def test_no_server_errors_and_responses_match_the_schema(api_schema: object, path: str) -> None:
    operation = api_schema[path]["GET"]  # type: ignore[index]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

    check()
