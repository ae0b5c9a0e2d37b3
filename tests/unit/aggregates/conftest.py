"""The fixtures most application tests share: an in-memory store and command contexts."""

from __future__ import annotations

import pytest

from dspyops.aggregates.app import DspyOps
from dspyops.aggregates.app.persistence import in_memory_env
from tests.unit.aggregates.test_application import Ids


@pytest.fixture
def app() -> DspyOps:
    return DspyOps(in_memory_env())


@pytest.fixture
def ctx() -> Ids:
    return Ids()
