"""`dspyops promote DATASET`: executions appended to a dataset as examples (PromoteExecutions).

The command carries execution ids only: the worker reads executions from the event store
and never the read models. A filter (program, version, latest feedback score, time) is
therefore a query this CLI makes over the read API (`GET /programs/{id}/executions`,
succeeded executions, newest first, at most `--limit`); the ids it finds are sent.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dspyops.cli import send_commands
from dspyops.cli.console import EXIT_USAGE, JsonOpt, err, fail
from dspyops.cli.read_api import ReadApi, ReadApiError
from dspyops.cli.read_commands import ApiOpt
from dspyops.settings import get_settings

MAX_PROMOTED = 10_000


def promote(
    dataset_id: Annotated[str, typer.Argument(help="The dataset to append the examples to.")],
    execution: Annotated[
        list[str] | None,
        typer.Option("--execution", "-e", help="An execution to promote; repeat for more."),
    ] = None,
    program: Annotated[
        str | None,
        typer.Option(help="Or: promote this program's succeeded executions that match."),
    ] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Filter: only this version.")] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Filter: latest scored feedback at least this.")
    ] = None,
    max_score: Annotated[
        float | None, typer.Option(help="Filter: latest scored feedback at most this.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Filter: requested at or after (RFC 3339).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Filter: requested before (RFC 3339).")] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_PROMOTED, help="With --program: at most this many, newest."),
    ] = None,
    api: ApiOpt = None,
    command_id: send_commands.CommandIdOpt = None,
    actor: send_commands.ActorOpt = None,
    timeout: send_commands.TimeoutOpt = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Promote executions into a dataset (PromoteExecutions): by id, or by a filter the read
    API applies. Executions already in the dataset are skipped."""
    filtered = {
        "version": version,
        "min_score": min_score,
        "max_score": max_score,
        "since": since,
        "until": until,
    }
    if execution and program:
        fail("give --execution ids or a --program filter, not both", code=EXIT_USAGE)
    if execution:
        if any(value is not None for value in (*filtered.values(), limit)):
            fail("filter options need --program", code=EXIT_USAGE)
        ids = list(execution)
    elif program:
        if limit is None:
            fail("a --program filter needs --limit (1..10,000)", code=EXIT_USAGE)
        ids = _matching(api, program, limit, filtered)
        if not ids:
            fail(f"no succeeded execution of {program!r} matches", "nothing was sent")
        err.print(f"{len(ids)} executions of {program} match", highlight=False)
    else:
        fail("give --execution ids or a --program filter", code=EXIT_USAGE)
    if len(ids) > MAX_PROMOTED:
        fail(f"{len(ids)} executions: at most {MAX_PROMOTED} per command", code=EXIT_USAGE)
    payload = {"dataset_id": dataset_id, "execution_ids": ids}
    send_commands.publish(
        "PromoteExecutions", payload, command_id, None, actor, timeout, False, json_out
    )


def _matching(api: str | None, program: str, limit: int, filtered: dict[str, Any]) -> list[str]:
    """The ids of the program's succeeded executions that match, newest first."""
    try:
        rows = ReadApi(get_settings(), api).items(
            f"/programs/{program}/executions", limit=limit, status="succeeded", **filtered
        )
    except ReadApiError as exc:
        fail(str(exc), exc.hint, code=exc.code)
    return [row["execution_id"] for row in rows]
