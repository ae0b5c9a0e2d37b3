"""`dspyops worker` as a real child process, for tests that kill and restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# For drills that kill -9 a worker and start another: the killed worker's consumers stay
# members of the group until the broker's session timeout drops them, and the new worker
# gets no partition before then. The broker's minimum (group.min.session.timeout.ms,
# 6 s) instead of the worker's default 10 s: a restarted worker answered its first
# command 6.0-7.1 s after the kill instead of 10.0-12.2 s (three of each, alternated).
KILL_DRILL_ENV = {"DSPYOPS_CONSUMER_SESSION_TIMEOUT_S": "6"}


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = ("--loglevel", "warn")
    ) -> None:
        self._env = {**os.environ, **env}
        self._args = args
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dspyops.cli.main", "worker", *self._args],
            cwd=REPO,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """kill -9 of the whole process group: no shutdown code runs."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def wait(self, timeout_s: float) -> int:
        """The exit status, once the process ends by itself (or TimeoutExpired)."""
        assert self._proc is not None
        return self._proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
