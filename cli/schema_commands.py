"""`dspyops schema export DIR`: JSON Schemas and the AsyncAPI document of the wire contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dspyops.cli.console import fail, out, print_json
from dspyops.events.schema_export import export_schemas
from dspyops.events.topics import Topics
from dspyops.settings import get_settings

app = typer.Typer(help="The wire contract as JSON Schema and AsyncAPI, for other languages.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@app.command("export")
def export(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder to write to; created if missing.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Write a JSON Schema per message type and an AsyncAPI 3.0 document of the topics."""
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a folder", "give a folder path, new or existing")
    topics = Topics(prefix=get_settings().topic_prefix)
    try:
        written = export_schemas(directory, topics=topics)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = exc.filename or directory
        fail(f"cannot write schemas to {where}: {reason}", "choose a folder you can write to")
    files = [str(path.relative_to(directory)) for path in written]
    if json_out:
        print_json({"dir": str(directory), "count": len(files), "files": files})
        return
    out.print(f"wrote {len(files)} files to {directory}", soft_wrap=True)
    for name in files:
        out.print(f"  {name}", highlight=False, soft_wrap=True)
