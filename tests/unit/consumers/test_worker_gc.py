"""tune_gc: a worker's startup objects are frozen and young collections run less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dspyops.consumers.worker import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_startup_objects_are_frozen_and_the_thresholds_raised() -> None:
    gc.unfreeze()
    held = [[n] for n in range(1000)]  # lists are tracked by the collector
    tune_gc()
    assert gc.get_freeze_count() >= len(held)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default
    del held
