"""Concurrent DSPy runs in one process must not break each other's progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from weakref import WeakSet

import pytest
import tqdm

from dspyops.runtime.progress_bars import ForgivingRegistry, make_progress_bars_thread_safe


@pytest.fixture
def registry() -> Iterator[None]:
    original = tqdm.tqdm._instances
    yield
    tqdm.tqdm._instances = original


def _bar_created_while_another_run_clears_the_registry() -> None:
    # What two threads interleave into: a bar registered (tqdm.__new__), then DSPy's
    # `tqdm.tqdm._instances.clear()` from another run, then the bar's own __init__.
    bar = tqdm.tqdm.__new__(tqdm.tqdm)
    tqdm.tqdm._instances.clear()
    bar.__init__(range(3), disable=True)


def test_without_the_guard_the_interleaving_fails(registry: None) -> None:
    tqdm.tqdm._instances = WeakSet()  # tqdm's own registry type
    with pytest.raises(KeyError):
        _bar_created_while_another_run_clears_the_registry()


def test_with_the_guard_the_interleaving_is_harmless(registry: None) -> None:
    make_progress_bars_thread_safe()
    make_progress_bars_thread_safe()  # idempotent
    assert isinstance(tqdm.tqdm._instances, ForgivingRegistry)
    _bar_created_while_another_run_clears_the_registry()
