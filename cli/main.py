"""The `dspyops` command."""

from __future__ import annotations

import typer

from dspyops.cli import (
    api_commands,
    demo_commands,
    dev_commands,
    infra_commands,
    projection_commands,
    read_commands,
    schema_commands,
    send_commands,
    watch_commands,
    worker_commands,
)

app = typer.Typer(
    name="dspyops",
    help="dspyops: the production home for DSPy programs, on Kafka and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(infra_commands.app, name="infra")
app.add_typer(schema_commands.app, name="schema")
app.command(name="worker")(worker_commands.worker)
app.add_typer(projection_commands.app, name="projections")
app.command(name="projector")(projection_commands.projector)
app.command(name="api")(api_commands.api)
app.command(name="dev")(dev_commands.dev)
app.command(name="demo")(demo_commands.demo)
app.command(name="send")(send_commands.send)
app.command(name="watch")(watch_commands.watch)
app.command(name="programs")(read_commands.programs)
app.command(name="executions")(read_commands.executions)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
