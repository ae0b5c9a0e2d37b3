"""The API's queries live in `api.views`: routes hold no SQL, every list view pages the same
way, and every field a response shows is a column of the read table it comes from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import pytest
from psycopg import AsyncConnection, sql

from dspyops.api import views
from dspyops.api.routes import audit, corpora, datasets, executions, programs, runs, serving
from dspyops.projections.read_schema import (
    AUDIT_LOG,
    CORPORA,
    DATASETS,
    EXECUTIONS,
    PROGRAM_VERSIONS,
    PROGRAMS,
    RUNS,
    SERVING_CHANGES,
    Table,
)

ROUTES = Path(views.__file__).parent / "routes"


@pytest.mark.parametrize("path", sorted(ROUTES.glob("*.py")), ids=lambda p: p.name)
def test_routes_hold_no_sql(path: Path) -> None:
    source = path.read_text()
    assert "psycopg import sql" not in source
    assert "SELECT " not in source


class RecordingConnection:
    """Records the one query a view runs and answers with no rows."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, list[Any]]] = []

    def cursor(self, row_factory: Any = None) -> RecordingConnection:
        return self

    async def __aenter__(self) -> RecordingConnection:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def execute(self, query: sql.Composed | str, params: list[Any]) -> None:
        # The paging and one-row views pass their statement as text, composed once.
        text = query if isinstance(query, str) else query.as_string(None)
        self.queries.append((text, list(params)))

    async def fetchall(self) -> list[dict[str, Any]]:
        return []


ListView = Callable[..., Awaitable[views.PageRows]]
LIST_VIEWS: dict[str, tuple[ListView, tuple[Any, ...], dict[str, Any]]] = {
    "programs": (views.programs, (), {"status": "draft", "name": "q"}),
    "executions": (
        views.executions,
        ("p",),
        {"status": None, "version": 2, "since": None, "until": None},
    ),
    "datasets": (views.datasets, (), {}),
    "corpora": (views.corpora, (), {}),
    "runs": (views.runs, ("optimization",), {"program_id": "p", "status": None}),
    "audit_trail": (views.audit_trail, ("p",), {}),
    "serving_history": (views.serving_history, ("p",), {}),
}


def test_every_list_view_is_checked() -> None:
    listed = {
        name
        for name, value in vars(views).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__annotations__", {}).get("return") == "PageRows"
    }
    # A dataset's examples page by their number, oldest first (tested below).
    assert listed == {*LIST_VIEWS, "dataset_examples"}


@pytest.mark.parametrize("cursor", [None, "41"])
async def test_dataset_examples_page_by_number_in_the_order_added(cursor: str | None) -> None:
    conn = RecordingConnection()
    found = await views.dataset_examples(
        cast(AsyncConnection, conn), "s", "d", split="dev", version=3, limit=7, cursor=cursor
    )
    assert found == views.PageRows([], None)
    ((query, params),) = conn.queries
    assert query.endswith("ORDER BY number LIMIT %s")
    assert '"split" = %s' in query
    assert '"dataset_version" <= %s' in query
    assert params[:3] == ["d", "dev", 3]
    assert params[-1] == 8
    assert ('"number" > %s' in query) == (cursor is not None)
    if cursor is not None:
        assert params[-2] == 41


@pytest.mark.parametrize("name", sorted(LIST_VIEWS))
@pytest.mark.parametrize("cursor", [None, "41"])
async def test_list_views_page_by_position_newest_first(name: str, cursor: str | None) -> None:
    view, args, filters = LIST_VIEWS[name]
    conn = RecordingConnection()
    found = await view(cast(AsyncConnection, conn), "s", *args, **filters, limit=7, cursor=cursor)
    assert found == views.PageRows([], None)
    ((query, params),) = conn.queries
    assert query.endswith("ORDER BY position DESC LIMIT %s")
    assert params[-1] == 8  # one more than the limit: is there another page?
    if cursor is None:
        assert "position <" not in query
    else:
        assert "position < %s ORDER BY" in query
        assert params[-2] == 41
    assert query.count("%s") == len(params)


# Response fields that are not columns: computed by the route from a row.
DERIVED: dict[str, set[str]] = {
    "Version": {"deployed"},
    "CompiledVersion": {"deployed"},
    "Execution": {"usage", "error"},
    "Optimization": {"error", "optimization_id"},
    "Evaluation": {"error", "evaluation_id"},
}


@pytest.mark.parametrize(
    ("model", "table"),
    [
        (programs.Program, PROGRAMS),
        (programs.Version, PROGRAM_VERSIONS),
        (programs.CompiledVersion, PROGRAM_VERSIONS),
        (datasets.Dataset, DATASETS),
        (corpora.Corpus, CORPORA),
        (executions.Execution, EXECUTIONS),
        (runs.Optimization, RUNS),
        (runs.Evaluation, RUNS),
        (audit.AuditEntry, AUDIT_LOG),
        (serving.ServingChange, SERVING_CHANGES),
    ],
    ids=lambda v: getattr(v, "__name__", getattr(v, "name", "")),
)
def test_response_fields_are_columns_of_their_table(model: Any, table: Table) -> None:
    fields = set(model.model_fields) - DERIVED.get(model.__name__, set())
    assert fields <= set(table.names), fields - set(table.names)


async def test_serving_at_an_instant_is_the_last_change_at_or_before_it() -> None:
    conn = RecordingConnection()
    at = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert await views.serving_at(cast(AsyncConnection, conn), "s", "p", at) is None
    ((query, params),) = conn.queries
    assert "WHERE program_id = %s AND occurred_at <= %s" in query
    # Two changes at the same instant: the later one in the store is in force.
    assert query.endswith("ORDER BY position DESC LIMIT 1")
    assert params == ["p", at]
