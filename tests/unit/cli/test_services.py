"""LocalServices stops exactly what it started, and kills what will not stop."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dspyops.cli import services as services_module
from dspyops.cli.services import Child, LocalServices, port_taken
from dspyops.settings import Settings

STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def _child(tmp_path, name: str, code: str) -> Child:
    child = Child(name=name, args=[], log_path=tmp_path / f"{name}.log")
    child.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.proc.stdout is not None
    child.proc.stdout.readline()  # its SIGTERM handler is in place
    return child


def test_stop_terminates_then_kills_and_touches_no_infra(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(services_module, "STOP_TIMEOUT_S", 1.0)
    services = LocalServices(Settings(), tmp_path)
    polite = _child(tmp_path, "polite", "import time; print('up', flush=True); time.sleep(60)")
    stubborn = _child(tmp_path, "stubborn", STUBBORN)
    services.children += [polite, stubborn]
    started = time.monotonic()
    assert services.stop() == ["stubborn", "polite"]
    assert time.monotonic() - started < 10
    assert polite.proc is not None
    assert polite.proc.returncode == -15  # SIGTERM
    assert stubborn.proc is not None
    assert stubborn.proc.returncode == -9  # had to be killed
    assert services.children == []


def test_dead_names_the_first_child_that_exited(tmp_path) -> None:
    services = LocalServices(Settings(), tmp_path)
    alive = _child(tmp_path, "alive", "import time; print('up', flush=True); time.sleep(60)")
    done = _child(tmp_path, "done", "print('up', flush=True)")
    services.children += [alive, done]
    try:
        assert done.proc is not None
        done.proc.wait(10)
        assert services.dead() is done
    finally:
        services.stop()


@pytest.mark.parametrize("listening", [True, False])
def test_port_taken(listening: bool) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if listening:
            sock.listen()
            assert port_taken("127.0.0.1", port)
    if not listening:
        assert not port_taken("127.0.0.1", port)
