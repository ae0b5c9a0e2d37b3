"""The local services `dspyops dev` and `dspyops demo` run: infra, then worker, projector, API.

Children run in this process's group, so Ctrl-C in a terminal reaches them too, and each
is asked (prctl PR_SET_PDEATHSIG) to get SIGTERM should this process die without
stopping them: no orphan outlives the command that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dspyops.cli.infra.processes import tail
from dspyops.cli.infra.stack import Stack
from dspyops.settings import Settings

# Seconds a child gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: children then do not follow their parent out
        return None


# Loaded here, in the parent: the child between fork and exec only makes the call (a
# library load there could wait forever on a lock another thread of the parent held).
_LIBC = _libc()


def die_with_parent() -> None:
    """A `preexec_fn`: this child gets SIGTERM when the thread that started it exits."""
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_path, lines)


@dataclass
class LocalServices:
    """What this command started, so that it stops exactly that and nothing else."""

    settings: Settings
    run_dir: Path
    children: list[Child] = field(default_factory=list)
    started_infra: list[str] = field(default_factory=list)

    @property
    def stack(self) -> Stack:
        return Stack(self.settings)

    def start_kafka(self) -> bool:
        """Start the local broker unless one answers; True if this call started it."""
        stack = self.stack
        if stack.kafka_answers() or stack.kafka is None:
            return False
        stack.kafka.start()
        self.started_infra.append("kafka")
        return True

    def start_postgres(self) -> bool:
        stack = self.stack
        if stack.postgres_answers() or stack.postgres is None:
            return False
        stack.postgres.start()
        self.started_infra.append("postgres")
        return True

    def spawn(self, name: str, *args: str) -> Child:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name=name, args=list(args), log_path=self.run_dir / f"{name}.log")
        with child.log_path.open("ab") as log:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "dspyops.cli.main", *args],
                # The worker keeps faust's data folder in its working directory.
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._child_env(),
                preexec_fn=die_with_parent,
            )
        self.children.append(child)
        return child

    def _child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        # Children read the very settings this process resolved, whatever their source.
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap_servers,
                "DATABASE_URL": s.effective_database_url,
                "DSPYOPS_TOPIC_PREFIX": s.topic_prefix,
                "DSPYOPS_EVENT_STORE_SCHEMA": s.event_store_schema,
                "DSPYOPS_READ_MODEL_SCHEMA": s.read_model_schema,
                "DSPYOPS_API_HOST": s.api_host,
                "DSPYOPS_API_PORT": str(s.api_port),
            }
        )
        return env

    def dead(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if not c.alive()), None)

    def stop(self) -> list[str]:
        """SIGTERM every child (last started first), kill after a timeout; then our infra."""
        stopped: list[str] = []
        for child in self.children:
            if child.alive() and child.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            stopped.append(child.name)
        self.children.clear()
        stack = self.stack
        if "kafka" in self.started_infra and stack.kafka is not None:
            stack.kafka.stop()
            stopped.append("kafka")
        if "postgres" in self.started_infra and stack.postgres is not None:
            stack.postgres.stop()
            stopped.append("postgres")
        self.started_infra.clear()
        return stopped
