"""The parent of `dspyops worker --processes N`: restarts, giving up, stopping; and the
merged metrics its children serve through it. Children here are small Python scripts, so
each rule is seen in a second or two; tests/integration/test_worker_processes.py runs the
real workers."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dspyops.cli.worker_processes import (
    GaveUp,
    RestartPolicy,
    Supervisor,
    default_count,
    process_count,
)

FAST = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, start_window_s=1.0, grace_s=1.0)


def _script(code: str) -> Callable[[int], list[str]]:
    return lambda n: [sys.executable, "-c", textwrap.dedent(code), str(n)]


def _env(n: int) -> dict[str, str]:
    return dict(os.environ)


def _run(supervisor: Supervisor, drive: Callable[[], None] | None = None) -> GaveUp | None:
    """`supervisor.run()` here, in the main thread where its signal handlers go, while
    `drive` acts from a thread and ends with a real SIGTERM to this process."""
    failures: list[BaseException] = []

    def driver() -> None:
        try:
            if drive is not None:
                drive()
        except BaseException as exc:
            failures.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    # Should run() be over when the SIGTERM comes, it must not end pytest.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    thread = threading.Thread(target=driver, daemon=True)
    outcome = None
    try:
        if drive is not None:
            thread.start()
        try:
            supervisor.run()
        except GaveUp as exc:
            outcome = exc
        if drive is not None:
            thread.join(timeout=10)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failures:
        raise failures[0]
    return outcome


def _wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent reaps it on its next poll).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_a_killed_child_is_started_again_and_sigterm_stops_all() -> None:
    gone: list[int] = []
    lines: list[str] = []
    supervisor = Supervisor(
        2, _script("import time; time.sleep(60)"), _env, FAST, on_exit=gone.append, say=lines.append
    )
    seen: dict[str, list[int]] = {}

    def drive() -> None:
        _wait_for(lambda: len(supervisor.pids()) == 2)
        seen["before"] = supervisor.pids()
        first = seen["before"][0]
        # Lived past the start window: a plain restart, not a death at start.
        time.sleep(FAST.start_window_s)
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: len(supervisor.pids()) == 2 and first not in supervisor.pids())
        seen["after"] = supervisor.pids()

    assert _run(supervisor, drive) is None
    first, second = seen["before"]
    assert second in seen["after"]
    assert lines == [
        f"worker process 1 (pid {first}) was killed by SIGKILL; restarting it in 0.05s"
    ]
    assert sorted(gone) == sorted([first, *seen["after"]])
    assert not any(_alive(pid) for pid in seen["after"])


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    stubborn = _script(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    began: list[float] = []
    supervisor = Supervisor(1, stubborn, _env, FAST)

    def drive() -> None:
        _wait_for(lambda: len(supervisor.pids()) == 1)
        time.sleep(0.5)  # past the interpreter's start, so SIGTERM finds it ignored
        began.append(time.monotonic())

    assert _run(supervisor, drive) is None
    stopped_in = time.monotonic() - began[0]
    assert FAST.grace_s <= stopped_in < FAST.grace_s + 2


def test_exit_status_2_at_start_gives_up_at_once_and_stops_the_others() -> None:
    gone: list[int] = []
    usage_error = _script("import sys, time; sys.exit(2) if sys.argv[1] == '2' else time.sleep(60)")
    supervisor = Supervisor(2, usage_error, _env, FAST, on_exit=gone.append)
    error = _run(supervisor)
    assert isinstance(error, GaveUp)
    assert error.code == 2
    assert str(error).startswith("worker process 2 (pid ")
    assert str(error).endswith(
        "exited with status 2 at start (a bad setting or option): not restarting"
    )
    assert "\n" not in str(error)
    assert len(gone) == 2  # the one that failed and the one stopped for it
    assert not any(_alive(pid) for pid in gone)


def test_a_child_that_keeps_dying_at_start_is_given_up_after_growing_delays() -> None:
    lines: list[str] = []
    # A start window no loaded machine outlasts: a Python child that exits at once may
    # still take over a second to do so here, and would then not count as dying at start.
    policy = dataclasses.replace(FAST, start_window_s=60.0)
    supervisor = Supervisor(1, _script("import sys; sys.exit(1)"), _env, policy, say=lines.append)
    error = _run(supervisor)
    assert isinstance(error, GaveUp)
    assert error.code == 1
    assert str(error).endswith(
        "exited with status 1; it died within 60s of its start 5 times in a row: giving up"
    )
    delays = [line.rsplit(" ", 1)[1] for line in lines]
    assert delays == ["0.1s", "0.2s", "0.2s", "0.2s"]  # 0.05 doubled, up to the most


def test_the_option_wins_then_the_setting_then_one_process_per_core() -> None:
    assert process_count(3, 2) == 3
    assert process_count(None, 2) == 2
    assert process_count(None, None) == default_count() == len(os.sched_getaffinity(0))


def test_the_parent_serves_only_worker_metrics_added_up_over_processes(tmp_path: Path) -> None:
    # Two "children" count commands into one folder; the parent's view adds them up and
    # leaves out the projector's and the API's metrics every process also defines.
    child = textwrap.dedent(
        """
        from dspyops import metrics
        metrics.COMMANDS.labels("ExecuteProgram", "ExecutionSucceeded").inc(3)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", child], env=env, check=True, timeout=60)
    parent = textwrap.dedent(
        """
        import sys
        from dspyops import metrics
        sys.stdout.write(metrics.exposition(metrics.WORKER).decode())
        """
    )
    text = subprocess.run(
        [sys.executable, "-c", parent],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    line = 'dspyops_commands_total{command_type="ExecuteProgram",result="ExecutionSucceeded"} 6.0'
    assert line in text.splitlines()
    assert "dspyops_projector" not in text
    assert "dspyops_api_" not in text


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    yield
    leftovers = subprocess.run(
        ["pgrep", "-P", str(os.getpid())], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == [], leftovers


def test_children_end_when_the_parent_is_killed(tmp_path: Path) -> None:
    # A parent killed -9 runs no code: its children get SIGTERM from the kernel.
    parent = textwrap.dedent(
        """
        import sys
        from dspyops.cli.worker_processes import Supervisor
        child = [sys.executable, "-c", "import time; time.sleep(60)"]
        Supervisor(2, lambda n: child, lambda n: {}, say=print).run()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        _wait_for(lambda: len(_children_of(proc.pid)) == 2, timeout_s=30)
        children = _children_of(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        _wait_for(lambda: not any(_alive(pid) for pid in children))
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]
