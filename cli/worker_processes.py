"""`dspyops worker --processes N`: N worker processes in one consumer group, one parent.

Each child is a plain `dspyops worker --processes 1` (its own faust data folder, its own
member of the consumer group). The parent restarts a child that dies, after a delay that
doubles while the child keeps dying at start, and gives up (stopping the others) when it
died at start too often in a row or exited with the usage status (a bad setting or
option: restarting cannot help). SIGTERM or SIGINT stops every child: SIGTERM, then
SIGKILL after the grace period; a second signal kills at once.

Children get SIGTERM should the parent die without stopping them (prctl
PR_SET_PDEATHSIG, as `dspyops dev`'s children), and run in the parent's process group,
so Ctrl-C in a terminal reaches them too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psycopg

from dspyops.cli.console import EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_USAGE
from dspyops.cli.services import die_with_parent
from dspyops.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead child is started again, and when the parent stops trying."""

    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # A child that dies sooner than this after its start "died at start".
    start_window_s: float = 20.0
    # Deaths at start in a row after which the parent gives up.
    max_start_deaths: int = 5
    # From SIGTERM to SIGKILL when stopping.
    grace_s: float = 15.0

    def delay(self, start_deaths: int) -> float:
        return min(self.first_delay_s * 2**start_deaths, self.max_delay_s)


class GaveUp(Exception):
    """The parent stops: a child kept dying at start, or the event store the children share
    could not be prepared; `code` is the parent's exit status (a child's last one)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Slot:
    number: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    start_deaths: int = 0
    restart_at: float | None = None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class Supervisor:
    """Runs `count` children, `command(n)` with the environment `env(n)` for child n
    (1-based), until a signal or a give-up; `on_exit(pid)` runs for each child gone."""

    count: int
    command: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    on_exit: Callable[[int], None] = lambda pid: None
    say: Callable[[str], None] = print
    poll_s: float = 0.1
    _slots: list[_Slot] = field(default_factory=list)
    _stop_signal: int | None = None
    _hurry: bool = False

    def run(self) -> None:
        """Returns once stopped by SIGTERM/SIGINT; raises GaveUp when a child keeps dying."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._slots = [_Slot(n) for n in range(1, self.count + 1)]
            for slot in self._slots:
                self._start(slot)
            while self._stop_signal is None:
                self._tend()
                time.sleep(self.poll_s)
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.poll() is None]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_signal is not None:
            self._hurry = True  # a second Ctrl-C: no more waiting
        self._stop_signal = signum

    def _start(self, slot: _Slot) -> None:
        slot.proc = subprocess.Popen(
            self.command(slot.number),
            env=self.env(slot.number),
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def _tend(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._start(slot)
                continue
            if slot.proc is None or (code := slot.proc.poll()) is None:
                continue
            self.on_exit(slot.proc.pid)
            self._after_death(slot, code, lived_s=now - slot.started_at)

    def _after_death(self, slot: _Slot, code: int, *, lived_s: float) -> None:
        pid = slot.proc.pid if slot.proc else "?"
        what = f"worker process {slot.number} (pid {pid}) {describe_exit(code)}"
        at_start = lived_s < self.policy.start_window_s
        slot.start_deaths = slot.start_deaths + 1 if at_start else 0
        if at_start and code == EXIT_USAGE:
            raise GaveUp(f"{what} at start (a bad setting or option): not restarting", code)
        if slot.start_deaths >= self.policy.max_start_deaths:
            raise GaveUp(
                f"{what}; it died within {self.policy.start_window_s:g}s of its start "
                f"{slot.start_deaths} times in a row: giving up",
                code if code > 0 else EXIT_ERROR,
            )
        delay = self.policy.delay(slot.start_deaths)
        self.say(f"{what}; restarting it in {delay:g}s")
        slot.restart_at = time.monotonic() + delay

    def stop(self) -> None:
        """SIGTERM to every child, SIGKILL to those still running after the grace period."""
        running = [s.proc for s in self._slots if s.proc is not None and s.proc.poll() is None]
        for proc in running:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.policy.grace_s
        killed = False
        while any(p.poll() is None for p in running):
            if not killed and (self._hurry or time.monotonic() >= deadline):
                for proc in running:
                    _signal(proc, signal.SIGKILL)
                killed = True
            time.sleep(self.poll_s)
        for proc in running:
            self.on_exit(proc.pid)
        for slot in self._slots:
            slot.proc, slot.restart_at = None, None


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def process_count(option: int | None, setting: int | None) -> int:
    """`--processes`, else DSPYOPS_WORKER_PROCESSES, else one per core."""
    return option or setting or default_count()


def default_count() -> int:
    """One process per core this process may run on."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if process_cpu_count is not None:
        return int(process_cpu_count() or 1)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_processes(settings: Settings, count: int, *, loglevel: str, log_format: str) -> None:
    """`count` children of `dspyops worker --processes 1`; their metrics, added up, served
    on the worker metrics port by this parent (prometheus-client's multi-process mode:
    each child writes its values to files in one folder, the parent reads them all)."""
    from prometheus_client import multiprocess

    from dspyops import metrics  # imported before the folder is set: the parent keeps none

    _prepare_store(settings)
    shared_dir, own_dir = _metrics_dir() if settings.worker_metrics_port else (None, False)
    if shared_dir is not None:
        os.environ[MULTIPROC_DIR] = str(shared_dir)
        metrics.serve(settings.worker_metrics_port, settings.metrics_host, "worker", metrics.WORKER)
    datadir = os.environ.get("FAUST_DATADIR") or os.environ.get("F_DATADIR") or FAUST_DATADIR
    parent_env = dict(os.environ)

    def env(n: int) -> dict[str, str]:
        return {
            **parent_env,
            "DSPYOPS_WORKER_PROCESSES": "1",
            "DSPYOPS_WORKER_METRICS_PORT": "0",
            # faust's own variable: a data folder per process, beside the usual one.
            "FAUST_DATADIR": f"{datadir}-process-{n}",
        }

    def command(n: int) -> list[str]:
        args = ["worker", "--processes", "1", "--log-level", loglevel, "--log-format", log_format]
        return [sys.executable, "-m", "dspyops.cli.main", *args]

    def gone(pid: int) -> None:
        if shared_dir is None:
            return
        multiprocess.mark_process_dead(pid, str(shared_dir))
        # Every gauge of a dead process goes (lags, in flight): only its counters stay.
        for path in shared_dir.glob(f"gauge_*_{pid}.db"):
            path.unlink(missing_ok=True)

    policy = RestartPolicy(grace_s=settings.worker_stop_grace_s)
    log.info("starting %d worker processes", count)
    try:
        Supervisor(count, command, env, policy, on_exit=gone, say=log.warning).run()
    finally:
        if own_dir and shared_dir is not None:
            shutil.rmtree(shared_dir, ignore_errors=True)


def _prepare_store(settings: Settings) -> None:
    """The event store's schema and tables and the relay's position table, made once here
    before the children start: children creating one PostgreSQL table at the same moment
    fail (a unique violation in pg_type), and a fresh store would crash all but one."""
    from dspyops import bootstrap
    from dspyops.consumers.relay import PositionStore

    url, schema = settings.effective_database_url, settings.event_store_schema
    try:
        bootstrap.open_store(url, schema).close()
        PositionStore(url, schema).ensure_table()
    except psycopg.OperationalError as exc:
        message = f"no worker process started: PostgreSQL does not answer ({exc})".strip()
        raise GaveUp(" ".join(message.split()), EXIT_UNAVAILABLE) from None


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# faust's default data folder, relative to the working directory.
FAUST_DATADIR = "{conf.name}-data"


def _metrics_dir() -> tuple[Path, bool]:
    """The operator's PROMETHEUS_MULTIPROC_DIR if set, else a fresh folder of our own."""
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        return Path(given), False
    return Path(tempfile.mkdtemp(prefix="dspyops-worker-metrics-")), True
