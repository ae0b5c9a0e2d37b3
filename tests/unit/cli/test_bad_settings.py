"""A bad setting is named in one line with exit status 2, never a pydantic traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _dspyops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"DSPYOPS_KAFKA_SECURITY_PROTOCOL": "BOGUS"},
            "error: bad setting: DSPYOPS_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT',",
        ),
        (
            {"DSPYOPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DSPYOPS_KAFKA_SASL_USERNAME": ""},
            "error: bad setting: SASL_SSL needs a SASL username and password",
        ),
        (
            {"DSPYOPS_COMMAND_RATE_LIMIT": "lots"},
            "error: bad setting: DSPYOPS_COMMAND_RATE_LIMIT: 'lots' is not a rate limit",
        ),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "", "DSPYOPS_API_PORT": "eighty"},
            "error: bad setting: DSPYOPS_API_PORT: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(env: dict[str, str], line: str) -> None:
    done = _dspyops(env, "programs")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(line), done.stderr


def test_every_bad_setting_is_named() -> None:
    done = _dspyops({"DSPYOPS_KAFKA_SECURITY_PROTOCOL": "BOGUS", "DSPYOPS_API_PORT": "x"}, "worker")
    assert done.returncode == 2, done.stderr
    assert "DSPYOPS_KAFKA_SECURITY_PROTOCOL" in done.stderr
    assert "hint: DSPYOPS_API_PORT: Input should be a valid integer" in done.stderr
