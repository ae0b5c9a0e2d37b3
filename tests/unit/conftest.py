"""Unit tests start from DSPy's default process state.

In-process worker tests (integration) apply the worker policy, which turns LM history
off process-wide; unit tests that read `lm.history` need DSPy's default back.
"""

from __future__ import annotations

import dspy
import pytest


@pytest.fixture(autouse=True)
def _dspy_default_history() -> None:
    if dspy.settings.disable_history:
        dspy.configure(disable_history=False)
