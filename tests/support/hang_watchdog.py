"""A last line against a test run that hangs: stacks printed, children killed, exit 1.

pytest-timeout's signal method fails a test that runs too long and lets the suite go on,
but it fires once per test: a teardown that then hangs (a consumer that never stops, a
fixture waiting on a dead broker) is no longer covered, and CI waits out its own limit
with nothing on screen. This watchdog arms a thread per test, setup to teardown, at
`HANG_FACTOR` times the test's timeout. When it fires, the test run is hung for good: it
prints every thread's stack and the captured output, kills every process the run started
(brokers of a test cluster, workers, API processes: they would keep CI waiting) and ends
the run with exit status 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Iterator

import psutil
import pytest

HANG_FACTOR = 2.5
DEFAULT_TIMEOUT_S = 300.0


def _limit_s(item: pytest.Item) -> float | None:
    """HANG_FACTOR times the test's timeout (its marker, `--timeout`, the ini's); None
    when there is none (`--timeout=0`, as under a debugger) or no pytest-timeout."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        timeout = float(marker.args[0])
    else:
        given = item.config.getoption("timeout", None)
        if given is None:
            try:
                given = item.config.getini("timeout")
            except ValueError:  # pytest-timeout not loaded (-p no:timeout)
                return None
        timeout = float(given) if given not in (None, "") else DEFAULT_TIMEOUT_S
    return HANG_FACTOR * timeout if timeout > 0 else None


def _report(item: pytest.Item, limit_s: float) -> None:
    terminal = item.config.get_terminal_writer()
    capman = item.config.pluginmanager.getplugin("capturemanager")
    out = err = ""
    if capman is not None:
        capman.suspend_global_capture(in_=True)
        out, err = capman.read_global_capture()
    terminal.sep("!", f"hung: {item.nodeid} still running after {limit_s:.0f}s")
    for title, text in (("captured stdout", out), ("captured stderr", err)):
        if text:
            terminal.sep("~", title)
            terminal.write(text[-20_000:])
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        terminal.sep("~", f"stack of {names.get(ident, '?')} ({ident})")
        terminal.write("".join(traceback.format_stack(frame)))
    terminal.flush()


def _kill_children() -> list[int]:
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)
    return [c.pid for c in children]


def _fire(item: pytest.Item, limit_s: float) -> None:
    try:
        _report(item, limit_s)
    finally:
        killed = _kill_children()
        terminal = item.config.get_terminal_writer()
        terminal.line(f"hang watchdog: killed child processes {killed}; exit status 1")
        terminal.flush()
        os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit_s = _limit_s(item)
    if limit_s is None:
        yield
        return
    timer = threading.Timer(limit_s, _fire, args=(item, limit_s))
    timer.daemon = True
    timer.name = "hang-watchdog"
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
