"""Small bar charts drawn on the server as SVG: the geometry here, the markup in
templates/analytics/_chart.html (a titled, described `role="img"`, colours from CSS classes).
The same numbers are always shown in a table beside the chart."""

from __future__ import annotations

from dataclasses import dataclass

BAR_HEIGHT = 22
GAP = 8
LABEL_WIDTH = 180
BAR_SPACE = 320
VALUE_WIDTH = 140


@dataclass(frozen=True)
class Bar:
    label: str
    shown: str  # the value as the table shows it
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    desc: str
    width: int
    height: int
    bars: list[Bar]


def bar_chart(id: str, title: str, desc: str, rows: list[tuple[str, float, str]]) -> Chart:
    """Horizontal bars for (label, value, shown) rows, scaled to the largest value."""
    top = max((value for _, value, _ in rows), default=0) or 1
    bars = [
        Bar(
            label=label,
            shown=shown,
            x=LABEL_WIDTH,
            y=GAP + index * (BAR_HEIGHT + GAP),
            width=max(round(BAR_SPACE * max(value, 0) / top), 1 if value > 0 else 0),
            height=BAR_HEIGHT,
        )
        for index, (label, value, shown) in enumerate(rows)
    ]
    height = GAP + len(bars) * (BAR_HEIGHT + GAP)
    return Chart(id, title, desc, LABEL_WIDTH + BAR_SPACE + VALUE_WIDTH, max(height, 40), bars)
