"""Charts as data: x values, one or more series, drawn by uPlot in the browser.

The numbers are aggregated in SQL (`views.execution_stats`, `queries`); a chart here only
lines them up. Every chart also renders as a table (inside its figure), so the numbers
read without JavaScript and to a screen reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dspyops.api.ui.render import plain

Row = dict[str, Any]
XKind = Literal["time", "version", "step"]


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float | None]
    format: Callable[[Any], str] = plain


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    x_kind: XKind
    x: list[float]
    series: Sequence[Series]

    @property
    def points(self) -> int:
        return len(self.x)

    def spec(self) -> dict[str, Any]:
        """What the browser draws (console.js)."""
        return {
            "x_kind": self.x_kind,
            "x": self.x,
            "series": [{"label": s.label, "values": s.values} for s in self.series],
        }

    def x_text(self, value: float) -> str:
        if self.x_kind == "time":
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%MZ")
        prefix = "v" if self.x_kind == "version" else "step "
        return f"{prefix}{int(value)}"

    def table_rows(self) -> list[tuple[str, list[str]]]:
        return [
            (self.x_text(x), [s.format(s.values[i]) for s in self.series])
            for i, x in enumerate(self.x)
        ]


def from_rows(
    key: str,
    title: str,
    x_kind: XKind,
    rows: Sequence[Row],
    x: Callable[[Row], float],
    series: Sequence[tuple[str, str, Callable[[Any], str]]],
) -> Chart:
    """A chart of `rows`: x from each row, each series (label, row key, format)."""
    return Chart(
        key,
        title,
        x_kind,
        [x(row) for row in rows],
        [
            Series(label, [_number(row.get(column)) for row in rows], fmt)
            for label, column, fmt in series
        ],
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
