"""Tables as data: a page lists its columns, one line each, and one macro draws any table.

A new field on a page is one more `Column` in its tuple: the label, the row key (or a
function of the row), how the value is written and where it links.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from dspyops.api.ui.render import plain

Row = dict[str, Any]


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None
    numeric: bool


@dataclass(frozen=True)
class Column:
    label: str
    # The row's key, or a function of the whole row.
    value: str | Callable[[Row], Any]
    format: Callable[[Any], str] = plain
    link: Callable[[Row], str | None] | None = None
    numeric: bool = False

    def cell(self, row: Row) -> Cell:
        raw = row.get(self.value) if isinstance(self.value, str) else self.value(row)
        href = self.link(row) if self.link else None
        return Cell(self.format(raw), href, self.numeric)


@dataclass(frozen=True)
class Table:
    caption: str
    columns: Sequence[Column]
    rows: Sequence[Row]
    # The next (older) page, when there is one.
    next_href: str | None = None
    empty: str = "Nothing yet."
    # A live table's event stream (api.ui.live): rows arrive and change without a reload.
    live: str | None = None
    row_ids: Callable[[Row], str] | None = field(default=None)

    def cells(self, row: Row) -> list[Cell]:
        return [column.cell(row) for column in self.columns]

    def row_id(self, row: Row) -> str | None:
        return self.row_ids(row) if self.row_ids else None


def path(*parts: str) -> str:
    """A console URL, each id part quoted (ids are free text)."""
    return "/ui/" + "/".join(quote(part, safe="") for part in parts)


def with_query(base: str, **params: Any) -> str:
    given = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{base}?{urlencode(given)}" if given else base
