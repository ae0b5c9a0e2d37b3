"""The `dspyops` command."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from dspyops.cli import (
    online_eval_command,
    promote_command,
    read_commands,
    routing_commands,
    schema_commands,
    send_commands,
    watch_commands,
)
from dspyops.cli.console import EXIT_USAGE, fail
from dspyops.cli.extras import (
    INSTALL_HINT,
    SERVER_COMMANDS,
    missing_server_modules,
    needs_server_message,
)
from dspyops.settings import setting_problems

app = typer.Typer(
    name="dspyops",
    help="dspyops: the production home for DSPy programs, on Kafka and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Client commands: the light install has everything they need.
app.add_typer(schema_commands.app, name="schema")
app.command(name="send")(send_commands.send)
app.command(name="feedback")(send_commands.feedback)
app.command(name="promote")(promote_command.promote)
app.command(name="alias")(routing_commands.alias)
app.command(name="split")(routing_commands.split)
app.command(name="online-eval")(online_eval_command.online_eval)
app.command(name="watch")(watch_commands.watch)
app.command(name="programs")(read_commands.programs)
app.command(name="serving")(read_commands.serving)
app.command(name="executions")(read_commands.executions)
app.command(name="execution")(read_commands.execution)


def _add_server_commands() -> None:
    """The commands that run the service, or a stand-in saying which extra to install."""
    missing = missing_server_modules()
    if missing:
        for name in SERVER_COMMANDS:
            _add_stand_in(name, missing)
        return
    from dspyops.cli import (
        api_commands,
        demo_commands,
        dev_commands,
        infra_commands,
        projection_commands,
        worker_commands,
    )

    app.add_typer(infra_commands.app, name="infra")
    app.command(name="worker")(worker_commands.worker)
    app.add_typer(projection_commands.app, name="projections")
    app.command(name="projector")(projection_commands.projector)
    app.command(name="api")(api_commands.api)
    app.command(name="dev")(dev_commands.dev)
    app.command(name="demo")(demo_commands.demo)


def _add_stand_in(name: str, missing: list[str]) -> None:
    message = needs_server_message(name, missing)

    @app.command(
        name=name,
        help=f"(needs the server extra) {message}",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def stand_in() -> None:
        fail(message, f"install it with: {INSTALL_HINT}")


_add_server_commands()


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        # A bad setting (an environment variable) is the operator's to fix: say which, in
        # one line each, not as a traceback.
        if exc.title != "Settings":
            raise
        problems = setting_problems(exc)
        try:
            fail(f"bad setting: {problems[0]}", "; ".join(problems[1:]) or None, code=EXIT_USAGE)
        except typer.Exit as stop:  # outside the app: no typer to turn it into the status
            raise SystemExit(stop.exit_code) from None


if __name__ == "__main__":
    main()
