"""`dspyops dev` as a background process group, the way a developer's terminal runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def dspyops(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one `dspyops` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "dspyops.cli.main", *args],
        cwd=REPO,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class DevProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.env = env
        self.log_path = log_path
        with log_path.open("wb") as log:
            # Its own session and group: a signal to the group is what Ctrl-C sends.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dspyops.cli.main", "dev", *args],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not re.search(r"^ready\b", self.output, re.MULTILINE):
            if self.proc.poll() is not None:
                raise AssertionError(f"dspyops dev exited {self.proc.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"dspyops dev not ready in {timeout_s}s:\n{self.output}")
            time.sleep(0.3)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def wait(self, timeout_s: float = 60) -> int:
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        """Last resort in teardown: nothing of this test may outlive it."""
        if self.proc.poll() is None:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def processes_with_prefix(prefix: str) -> list[psutil.Process]:
    """Live processes whose environment names this topic prefix: ours, whoever started them."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DSPYOPS_TOPIC_PREFIX") == prefix and not gone(process):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
