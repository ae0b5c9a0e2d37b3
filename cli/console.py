"""Output shared by every CLI command: one clear line and a hint on errors, --json for scripts."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def fail(message: str, hint: str | None = None, *, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[dim]hint:[/] {hint}")
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    # Plain print so scripts get exactly one JSON document, without rich markup.
    print(json.dumps(value, indent=2, sort_keys=True, default=str))
