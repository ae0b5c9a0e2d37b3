"""`dspyops programs`, `dspyops serving`, `dspyops executions` and `dspyops execution`: the
read side, as tables and trees (or --json)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dspyops.cli.console import JsonOpt, fail, out, print_json
from dspyops.cli.read_api import ReadApi, ReadApiError
from dspyops.cli.trace_tree import span_tree
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


def serving(
    program_id: Annotated[str, typer.Argument(help="The program whose serving to show.")],
    at: Annotated[
        str | None,
        typer.Option(help="An RFC 3339 time with its offset (2026-05-01T12:00:00Z). Default: now."),
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="List every change instead, newest first.")
    ] = False,
    limit: LimitOpt = 50,
    api: ApiOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show which versions served a program, by alias and with their weights, at an
    instant (default: now); or, with --history, every change with who made it and why."""
    if history:
        _serving_history(program_id, limit, api, json_out)
        return
    try:
        found = ReadApi(get_settings(), api).get(f"/programs/{program_id}/serving", at=at)
    except ReadApiError as exc:
        fail(str(exc), exc.hint, code=exc.code)
    if json_out:
        print_json(found)
        return
    change = found["change"]
    since = "nothing had served yet" if change is None else f"since {_change_line(change)}"
    out.print(
        f"{escape(program_id)} at {found['at']}: {escape(since)}", highlight=False, soft_wrap=True
    )
    table = Table("alias", "version", "weights")
    for alias, version in sorted(found["aliases"].items()):
        shares = found["weights"].get(alias, {})
        weights = ", ".join(f"v{v} {percent:g}%" for v, percent in shares.items())
        table.add_row(*_cells(alias, version, weights))
    if found["aliases"]:
        out.print(table)
    else:
        out.print("no version serving")


def _serving_history(program_id: str, limit: int, api: str | None, json_out: bool) -> None:
    rows = _fetch(api, f"/programs/{program_id}/serving/history", limit=limit)
    if json_out:
        print_json(rows)
        return
    table = Table("at", "change", "alias", "from", "to", "actor", "reason", "command")
    for c in rows:
        table.add_row(
            *_cells(
                c["occurred_at"],
                c["kind"],
                c["alias"],
                c["previous_version"],
                c["version"],
                c["actor"],
                c["reason"],
                c["command_id"],
            )
        )
    _show(table, len(rows), "serving changes")


def _change_line(change: dict[str, Any]) -> str:
    """`2026-... AliasSet canary -> v3 by frank (command c-1)`: what made the state."""
    moved = ""
    if change["alias"] is not None:
        to = "none" if change["version"] is None else f"v{change['version']}"
        moved = f" {change['alias']} -> {to}"
    actor = f" by {change['actor']}" if change["actor"] else ""
    return (
        f"{change['occurred_at']} {change['kind']}{moved}{actor} (command {change['command_id']})"
    )


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


def execution(
    execution_id: Annotated[str, typer.Argument(help="The execution to show.")],
    api: ApiOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one execution: its outcome, and its trace as a tree (each step, predictor, LM,
    tool and retrieval call with its latency)."""
    try:
        detail = ReadApi(get_settings(), api).get(f"/executions/{execution_id}")
    except ReadApiError as exc:
        fail(str(exc), exc.hint, code=exc.code)
    if json_out:
        print_json(detail)
        return
    status = f"{detail['status']} (offline)" if detail["offline"] else detail["status"]
    latency = detail["latency_ms"]
    tokens = (detail.get("usage") or {}).get("total_tokens")
    out.print(
        f"{detail['program_id']} version {detail['version']}: {status}"
        + ("" if latency is None else f" in {latency:.1f} ms")
        + ("" if tokens is None else f", {tokens} tokens")
        + ("" if detail["status"] == "requested" else f", {usd(detail.get('cost_usd'))}"),
        highlight=False,
    )
    if detail["status"] == "succeeded":
        out.print(f"outputs: {escape(_short(detail['outputs'], 2_000))}", highlight=False)
    elif detail.get("error"):
        where = f" at step {detail['failed_step']}" if detail.get("failed_step") else ""
        out.print(f"error{where}: {escape(_short(detail['error'], 2_000))}", highlight=False)
    if detail.get("trace"):
        out.print(span_tree(detail["trace"]))
    else:
        out.print("[dim]no trace recorded (executions before traces, or still requested)[/]")


def usd(cost: float | None) -> str:
    """A cost as people read it; unknown is said, never shown as 0."""
    if cost is None:
        return "cost unknown"
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.2f}"


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
