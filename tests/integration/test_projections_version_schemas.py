"""Each version's input/output JSON Schemas are compiled once by the projector and read by
`GET /programs/{id}/schema`; a read schema an earlier layout made gets the columns filled
when a projector opens it, and one that cannot be filled asks for a rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from dspyops.aggregates.app import handle
from dspyops.api.main import create_app
from dspyops.bootstrap import open_store
from dspyops.events.commands import RegisterProgram, SetOnlineEvaluation, UpdateProgram
from dspyops.projections.projector import Projector
from dspyops.projections.rebuild import rebuild
from dspyops.projections.upgrade import OutdatedReadSchema
from dspyops.settings import Settings
from dspyops.signatures import compile_signature
from tests.support.projector_process import ROOT, projector_env, table_rows
from tests.support.read_story import ctx, schemas, seed_story


def project(database_url: str, es: str, rs: str) -> list[str]:
    projector = Projector(database_url, event_store_schema=es, read_schema=rs)
    try:
        projector.catch_up()
    finally:
        projector.close()
    return projector.upgrades


def execute(database_url: str, query: str, rs: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL(query).format(sql.Identifier(rs)))


@pytest.fixture
def stores(database_url: str, unique: str) -> Iterator[tuple[str, str, str]]:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            seed_story(store)
        finally:
            store.close()
        yield es, live, fresh


def client_for(settings: Settings, database_url: str, es: str, rs: str) -> TestClient:
    return TestClient(
        create_app(
            settings.model_copy(
                update={
                    "database_url": database_url,
                    "event_store_schema": es,
                    "read_model_schema": rs,
                    "api_token": None,
                }
            )
        )
    )


def compiled_schemas(client: TestClient, program_id: str, number: int) -> dict[str, Any]:
    program = client.get(f"/programs/{program_id}").json()
    version = client.get(f"/programs/{program_id}/versions/{number}").json()
    compiled = compile_signature(
        program["signature"],
        instructions=version["instructions"],
        descriptions=program["field_descriptions"],
    )
    return {
        "program_id": program_id,
        "version": number,
        "signature": program["signature"],
        "input_schema": compiled.input_json_schema(),
        "output_schema": compiled.output_json_schema(),
    }


def assert_schemas_equal_compiled(client: TestClient) -> None:
    for program_id, numbers in (("qa", [1, 2, 3]), ("sum", [1])):
        for number in numbers:
            answer = client.get(f"/programs/{program_id}/schema?version={number}")
            assert answer.status_code == 200, answer.text
            # Key order included: the answer is what compiling per request gave.
            assert json.dumps(answer.json()) == json.dumps(
                compiled_schemas(client, program_id, number)
            )


def test_schema_route_answers_the_stored_schemas(
    stores: tuple[str, str, str], database_url: str, settings: Settings
) -> None:
    es, live, _ = stores
    assert project(database_url, es, live) == []
    with client_for(settings, database_url, es, live) as client:
        assert_schemas_equal_compiled(client)
        # The route reads the column: a stored value (here a marker) is what it answers.
        execute(
            database_url,
            "UPDATE {}.program_versions SET input_schema = '{{\"marker\": true}}' "
            "WHERE program_id = 'qa' AND number = 2",
            live,
        )
        assert client.get("/programs/qa/schema?version=2").json()["input_schema"] == {
            "marker": True
        }
        execute(
            database_url,
            "UPDATE {}.program_versions SET input_schema = NULL, output_schema = NULL "
            "WHERE program_id = 'qa' AND number = 2",
            live,
        )
        missing = client.get("/programs/qa/schema?version=2")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "compilable signature of program 'qa' not found"}


def test_projector_fills_the_columns_of_an_earlier_layouts_read_schema(
    stores: tuple[str, str, str], database_url: str, settings: Settings
) -> None:
    es, live, fresh = stores
    project(database_url, es, live)
    # The read schema exactly as the previous layout made it: without the two columns.
    execute(
        database_url,
        "ALTER TABLE {}.program_versions DROP COLUMN input_schema, DROP COLUMN output_schema",
        live,
    )
    with client_for(settings, database_url, es, live) as client:
        outdated = client.get("/programs/qa/schema")
        assert outdated.status_code == 503
        assert "projections rebuild" in outdated.json()["detail"]
        assert client.get("/programs/qa/versions").status_code == 200

        # New events after the upgrade land on the upgraded tables.
        store = open_store(database_url, es)
        try:
            handle(store, UpdateProgram(program_id="sum", instructions="One line."), ctx())
        finally:
            store.close()
        upgrades = project(database_url, es, live)
        assert len(upgrades) == 1
        assert "program_versions.input_schema/output_schema" in upgrades[0]
        assert "filled 4 rows" in upgrades[0]
        assert project(database_url, es, live) == []  # once only

        project(database_url, es, fresh)
        assert table_rows(database_url, live) == table_rows(database_url, fresh)
        assert_schemas_equal_compiled(client)
        assert client.get("/programs/sum/schema?version=2").status_code == 200


def test_a_column_only_events_can_fill_asks_for_a_rebuild(
    stores: tuple[str, str, str], database_url: str
) -> None:
    es, live, fresh = stores
    project(database_url, es, live)
    project(database_url, es, fresh)
    execute(database_url, "ALTER TABLE {}.runs DROP COLUMN cancel_reason", live)
    with pytest.raises(OutdatedReadSchema, match="projections rebuild"):
        Projector(database_url, event_store_schema=es, read_schema=live)
    refused = subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", "projector"],
        cwd=ROOT,
        env=projector_env(database_url, es, live),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "cancel_reason" in refused.stderr
    assert "dspyops projections rebuild" in refused.stderr
    rebuild(database_url, event_store_schema=es, read_schema=live)
    assert project(database_url, es, live) == []
    assert table_rows(database_url, live) == table_rows(database_url, fresh)


def test_a_read_schema_without_costs_gets_the_column_and_serves_null(
    stores: tuple[str, str, str], database_url: str, settings: Settings
) -> None:
    es, live, _ = stores
    project(database_url, es, live)
    execute(database_url, "ALTER TABLE {}.executions DROP COLUMN cost_usd", live)

    upgrades = project(database_url, es, live)

    assert [u for u in upgrades if "executions.cost_usd" in u] == upgrades
    assert len(upgrades) == 1
    with client_for(settings, database_url, es, live) as client:
        executions = client.get("/programs/qa/executions").json()["items"]
        assert executions
        # Rows projected before the column existed: unknown, not 0.
        assert {e["cost_usd"] for e in executions} == {None}
        assert client.get("/programs/qa/metrics").json()["overall"]["cost_usd"] is None


def test_a_read_schema_without_aliases_gets_production_from_the_deployed_version(
    stores: tuple[str, str, str], database_url: str, settings: Settings
) -> None:
    es, live, _ = stores
    project(database_url, es, live)
    execute(database_url, "ALTER TABLE {}.programs DROP COLUMN aliases", live)

    upgrades = project(database_url, es, live)

    assert len(upgrades) == 1
    assert "programs.aliases" in upgrades[0]
    assert "filled 1 rows" in upgrades[0]
    with client_for(settings, database_url, es, live) as client:
        # An earlier layout's projector never saw a SetAlias (its code had none): the
        # backfill knows production only, the deployed version; the story's staging alias,
        # projected before the column was dropped here, is not derivable from the row.
        assert client.get("/programs/qa").json()["aliases"] == {"production": 1}
        assert client.get("/programs/sum").json()["aliases"] == {}


def test_a_read_schema_without_the_serving_history_asks_for_a_rebuild(
    stores: tuple[str, str, str], database_url: str
) -> None:
    es, live, fresh = stores
    project(database_url, es, live)
    project(database_url, es, fresh)
    # As an earlier layout made it: the story's deploys and aliases projected, no table.
    execute(database_url, "DROP TABLE {}.serving_changes", live)
    with pytest.raises(OutdatedReadSchema, match=r"serving_changes.*projections rebuild"):
        Projector(database_url, event_store_schema=es, read_schema=live)
    rebuild(database_url, event_store_schema=es, read_schema=live)
    assert project(database_url, es, live) == []
    assert table_rows(database_url, live) == table_rows(database_url, fresh)
    assert table_rows(database_url, live)["serving_changes"]


def test_a_read_schema_that_served_nothing_gets_the_serving_history_empty(
    database_url: str, unique: str
) -> None:
    es, live = f"test_es_{unique}", f"test_live_{unique}"
    with schemas(database_url, es, live):
        store = open_store(database_url, es)
        try:
            handle(
                store,
                RegisterProgram(program_id="p", name="P", signature="a: str -> b: str"),
                ctx(),
            )
        finally:
            store.close()
        project(database_url, es, live)
        execute(database_url, "DROP TABLE {}.serving_changes", live)
        # No serving event was projected: the table created empty is what the events give.
        assert project(database_url, es, live) == []
        assert table_rows(database_url, live)["serving_changes"] == []


def test_a_read_schema_without_online_evaluation_gets_it_from_the_audit_trail(
    database_url: str, settings: Settings, unique: str
) -> None:
    es, live, fresh = f"test_es_{unique}", f"test_live_{unique}", f"test_fresh_{unique}"
    with schemas(database_url, es, live, fresh):
        store = open_store(database_url, es)
        try:
            for program_id, signature in (
                ("qa", "question: str -> answer: str"),
                ("st", "question: str -> answer: str"),
                ("none", "question: str -> answer: str"),
                ("watcher", "question: str, answer: str -> score: int[1, 5]"),
            ):
                register = RegisterProgram(
                    program_id=program_id, name=program_id, signature=signature
                )
                handle(store, register, ctx())
            for command in (
                SetOnlineEvaluation(program_id="qa", judge="watcher", sample_percent=5),
                SetOnlineEvaluation(program_id="qa", judge="watcher", sample_percent=30),
                SetOnlineEvaluation(program_id="st", judge="watcher"),
                SetOnlineEvaluation(program_id="st", judge=None),
            ):
                assert handle(store, command, ctx()).result_type == "OnlineEvaluationSet"
        finally:
            store.close()
        project(database_url, es, live)
        project(database_url, es, fresh)
        # As the previous layout made it: the events projected, no column.
        execute(database_url, "ALTER TABLE {}.programs DROP COLUMN online_evaluation", live)

        upgrades = project(database_url, es, live)

        assert len(upgrades) == 1
        assert "programs.online_evaluation" in upgrades[0]
        assert "filled 1 rows" in upgrades[0]  # qa; st stopped, none never judged: NULL
        assert table_rows(database_url, live) == table_rows(database_url, fresh)
        with client_for(settings, database_url, es, live) as client:
            assert client.get("/programs/qa").json()["online_evaluation"] == {
                "judge": "watcher",
                "alias": None,
                "sample_percent": 30.0,
            }
            assert client.get("/programs/st").json()["online_evaluation"] is None
