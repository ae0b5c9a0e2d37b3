"""One execution's page: inputs, outputs, its trace tree with a timing bar per step, feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from dspyops.api import views
from dspyops.api.deps import DbDep, SettingsDep
from dspyops.api.errors import NO_NUL, not_found
from dspyops.api.routes.executions import shape
from dspyops.api.ui.columns import FEEDBACK_COLUMNS
from dspyops.api.ui.render import page
from dspyops.api.ui.tables import Table, path
from dspyops.api.ui.trace import BAR_WIDTH, span_count, trace_view

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
async def execution_page(
    request: Request,
    execution_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    db: DbDep,
    settings: SettingsDep,
) -> HTMLResponse:
    schema = settings.read_model_schema
    row = await views.execution(db, schema, execution_id)
    if row is None:
        raise not_found("execution", execution_id)
    execution = shape(row)
    trace = trace_view(execution["trace"])
    feedback = Table(
        "Feedback, oldest first",
        FEEDBACK_COLUMNS,
        await views.feedback(db, schema, execution_id),
        empty="No feedback yet.",
    )
    return page(
        request,
        "execution.html",
        title=f"Execution {execution_id}",
        execution=execution,
        trace=trace,
        spans=span_count(trace),
        bar_width=BAR_WIDTH,
        feedback=feedback,
        program_href=path("programs", execution["program_id"]),
    )
