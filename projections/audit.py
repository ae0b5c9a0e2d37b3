"""What an event changed: before/after values of the fields it touched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: {"before": old, "after": new}}` for each field whose value differs."""
    old = before or {}
    return {
        name: {"before": old.get(name), "after": value}
        for name, value in after.items()
        if old.get(name) != value
    }
