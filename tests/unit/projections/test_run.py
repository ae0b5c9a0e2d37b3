"""The projector service loop's edges that need no database: stopping and failing to start."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from dspyops.projections.run import NotStarted, run_projector, stop_on_signals
from dspyops.settings import get_settings


def test_a_signal_sets_the_stop_event() -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        stop = stop_on_signals(signal.SIGUSR1)
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.wait(5)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_an_unreachable_database_is_not_started_with_a_hint() -> None:
    # Nothing listens there.
    settings = get_settings().model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/none"}
    )
    lines: list[str] = []
    with pytest.raises(NotStarted, match="PostgreSQL does not answer") as caught:
        run_projector(settings, threading.Event(), report=lines.append)
    assert caught.value.hint is not None
    assert "DATABASE_URL" in caught.value.hint
    assert lines == []
