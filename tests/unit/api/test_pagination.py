"""Cursor encoding and the audit diff: pure functions the read side relies on."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from dspyops.api import pagination
from dspyops.projections.appliers.audit import changes


@given(st.integers(min_value=0, max_value=2**62))
def test_cursor_round_trips(position: int) -> None:
    assert pagination.decode(pagination.encode(position)) == position


@pytest.mark.parametrize("cursor", ["", "!!", "-1", "1e3", "٣"])
def test_bad_cursor_is_a_400(cursor: str) -> None:
    with pytest.raises(HTTPException) as caught:
        pagination.decode(cursor)
    assert caught.value.status_code == 400


def test_page_cuts_at_limit_and_points_at_last_row() -> None:
    rows = [{"position": p} for p in (9, 7, 5)]
    items, cursor = pagination.page(rows, 2)
    assert items == rows[:2]
    assert cursor is not None
    assert pagination.decode(cursor) == 7
    assert pagination.page(rows, 3) == (rows, None)


def test_changes_keep_only_what_differs() -> None:
    before = {"status": "optimized", "deployed_version": None, "name": "x"}
    after = {"status": "deployed", "deployed_version": 2, "name": "x"}
    assert changes(before, after) == {
        "status": {"before": "optimized", "after": "deployed"},
        "deployed_version": {"before": None, "after": 2},
    }
    assert changes(None, {"name": "x"}) == {"name": {"before": None, "after": "x"}}
