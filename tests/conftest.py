"""Shared fixtures, one process per test worker, and the rule that a run which collects no
test fails."""

from __future__ import annotations

import os

import pytest

# Every worker a test starts (directly, or through `dspyops dev` and `demo`) is one process
# unless the test asks for more with `--processes`: by default `dspyops worker` runs one
# per core, and the suite starts many workers on machines with few cores.
os.environ.setdefault("DSPYOPS_WORKER_PROCESSES", "1")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when nothing was collected; a green CI must mean tests ran.
    if session.testscollected == 0 or exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
