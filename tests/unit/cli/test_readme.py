"""The README stays true to the code: its first commands, every setting, every CLI command."""

from __future__ import annotations

import re
from pathlib import Path

from dspyops.cli.main import app
from dspyops.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def test_the_two_fresh_machine_commands_come_first() -> None:
    commands = re.findall(r"^    (\S.*)$", README, re.MULTILINE)
    assert commands[:2] == ["./scripts/demo", "./scripts/test"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = re.findall(r"^    (\S.*)$", README, re.MULTILINE)[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    runs = [line for line in ci_lines if line and not line.startswith(("#", "export", "unset"))]
    # The test command is what CI runs, and the last thing it runs (its exit is CI's exit).
    assert runs[-1] == test_command


def test_every_setting_is_in_the_configuration_reference() -> None:
    aliases = {"kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS", "database_url": "DATABASE_URL"}
    for field in Settings.model_fields:
        name = aliases.get(field, f"DSPYOPS_{field.upper()}")
        assert f"| `{name}` |" in README, name


def test_every_cli_command_is_in_the_reference() -> None:
    names = [c.name for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    assert names
    for name in names:
        assert f"`dspyops {name}" in README or f"`dspyops {name}`" in README, name


def test_the_contract_and_the_diagram_are_there() -> None:
    assert "](docs/contract.md)" in README
    assert "dspyops schema export" in README
    assert "```mermaid" in README
