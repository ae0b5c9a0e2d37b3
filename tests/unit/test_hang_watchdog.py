"""The hang watchdog ends a run whose teardown hangs after pytest-timeout has fired.

The run is a pytest of its own in a child process: the watchdog exits the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]

HANGING = """
import subprocess, sys, time
import pytest

@pytest.fixture
def stuck(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (tmp_path.parent.parent / "child.pid").write_text(str(child.pid))
    yield
    time.sleep(600)  # a teardown that never ends, after the timeout has fired

def test_runs_past_its_timeout(stuck):
    time.sleep(600)
"""


def _pytest(
    tmp_path: Path, test_source: str, *options: str, ini_timeout: str = "1"
) -> subprocess.CompletedProcess[str]:
    """`test_source` run by a pytest of its own with the watchdog and an ini timeout of
    `ini_timeout` s (so the watchdog's limit is 2.5 times that unless `options` say
    otherwise). Only pytest-timeout and the watchdog are loaded (the suite's other
    plugins, hypothesis and schemathesis, took most of each run's start); `-p no:timeout`
    in `options` leaves pytest-timeout out too."""
    (tmp_path / "test_it.py").write_text(test_source)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ntimeout = {ini_timeout}\n")
    plugins = [] if "no:timeout" in options else ["-p", "pytest_timeout"]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *plugins,
            "-p",
            "tests.support.hang_watchdog",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'base'}",
            *options,
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_teardown_that_hangs_after_the_timeout_ends_the_run_with_stacks(
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    run = _pytest(tmp_path, HANGING)
    took = time.monotonic() - began
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "hung: test_it.py::test_runs_past_its_timeout still running after 2s" in run.stdout
    assert "stack of MainThread" in run.stdout
    assert "time.sleep(600)  # a teardown that never ends" in run.stdout
    child = int((tmp_path / "child.pid").read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    assert f"killed child processes [{child}]" in run.stdout
    assert took < 60, took


SLOW = """
import time

def test_takes_two_seconds():
    time.sleep(2)
"""
SLOW_INI_TIMEOUT = "0.4"  # the watchdog's limit from the ini alone: 1 s, half the test


def test_no_timeout_no_watchdog(tmp_path: Path) -> None:
    # --timeout=0 (as under a debugger) and a run without pytest-timeout: the 2 s test
    # runs to its end, past the 1 s the ini's timeout would give the watchdog.
    for options in (["--timeout=0"], ["-p", "no:timeout"]):
        run = _pytest(tmp_path, SLOW, *options, ini_timeout=SLOW_INI_TIMEOUT)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "1 passed" in run.stdout


def test_the_command_lines_timeout_sets_the_watchdog(tmp_path: Path) -> None:
    # --timeout=10 over the ini's 0.4: no pytest-timeout failure and no watchdog at 1 s.
    run = _pytest(tmp_path, SLOW, "--timeout=10", ini_timeout=SLOW_INI_TIMEOUT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
