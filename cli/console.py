"""Output shared by every CLI command: one clear line and a hint on errors, --json for scripts."""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)

# Exit codes scripts can tell apart (typer itself uses 2 for a bad command line).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
EXIT_REJECTED = 5

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def fail(message: str, hint: str | None = None, *, code: int = EXIT_ERROR) -> NoReturn:
    # Escaped: messages quote logs and user input, which may hold [brackets].
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    # Plain print so scripts get exactly one JSON document, without rich markup.
    print(json.dumps(value, indent=2, sort_keys=True, default=str))
