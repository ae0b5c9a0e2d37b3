"""`dspyops programs` and `dspyops executions`: the read side, as tables (or --json)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dspyops.cli.console import JsonOpt, fail, out, print_json
from dspyops.cli.read_api import ReadApi, ReadApiError
from dspyops.settings import get_settings

ApiOpt = Annotated[
    str | None, typer.Option("--api", help="API base URL. Default: DSPYOPS_API_HOST/PORT.")
]
LimitOpt = Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")]


def programs(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    name: Annotated[str | None, typer.Option(help="Name contains this.")] = None,
    limit: LimitOpt = 50,
    api: ApiOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List programs, newest first."""
    rows = _fetch(api, "/programs", limit=limit, status=status, name=name)
    if json_out:
        print_json(rows)
        return
    table = Table("program", "name", "status", "latest", "deployed", "module", "signature")
    for p in rows:
        table.add_row(
            *_cells(
                p["program_id"],
                p["name"],
                p["status"],
                p["latest_version"],
                p["deployed_version"],
                p["module"],
                p["signature"],
            )
        )
    _show(table, len(rows), "programs")


def executions(
    program_id: Annotated[str, typer.Argument(help="The program whose executions to list.")],
    status: Annotated[str | None, typer.Option(help="requested, succeeded or failed.")] = None,
    version: Annotated[int | None, typer.Option(min=1, help="Only this version.")] = None,
    limit: LimitOpt = 20,
    api: ApiOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a program's executions, newest first."""
    rows = _fetch(
        api, f"/programs/{program_id}/executions", limit=limit, status=status, version=version
    )
    if json_out:
        print_json(rows)
        return
    table = Table("execution", "v", "status", "latency ms", "tokens", "outputs", "at")
    for e in rows:
        outputs = e["outputs"] if e["status"] == "succeeded" else e.get("error")
        table.add_row(
            *_cells(
                e["execution_id"],
                e["version"],
                f"{e['status']} (offline)" if e["offline"] else e["status"],
                None if e["latency_ms"] is None else round(e["latency_ms"], 1),
                (e.get("usage") or {}).get("total_tokens"),
                _short(outputs),
                str(e["requested_at"])[11:19],
            )
        )
    _show(table, len(rows), "executions")


def _fetch(api: str | None, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
    try:
        return ReadApi(get_settings(), api).items(path, limit=limit, **params)
    except ReadApiError as exc:
        fail(str(exc), exc.hint, code=exc.code)


def _show(table: Table, count: int, what: str) -> None:
    if count:
        out.print(table)
    else:
        out.print(f"no {what} yet")


def _cells(*values: Any) -> list[str]:
    # Escaped: values such as "[offline] answer" are text, not rich markup.
    return [escape("-" if value is None else str(value)) for value in values]


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "-"
    return text if len(text) <= width else text[: width - 1] + "…"
