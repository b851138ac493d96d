"""Server-rendered SVG charts: the numbers are laid out here, the template draws them."""

from dataclasses import dataclass
from datetime import date

#: The drawing's units; on a phone it is shown at about half size, so the left margin and
#: the bottom leave room for labels drawn twice as large there (see dashboard.html).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 200, 84, 34, 14


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    line: str  # polyline points, for line charts
    bars: list[Bar]  # for bar charts
    ticks: list[tuple[float, str]]  # (y, label) on the value axis
    first_label: str
    last_label: str
    peak: int
    summary: str  # the chart in words, for screen readers
    left: int = LEFT  # where the plot starts; the value labels end just before it


def _day(day: date) -> str:
    """A short axis label that reads the same everywhere: ``7 Dec 2026``."""
    return f"{day.day} {day:%b %Y}"


def chart(title: str, points: list[tuple[date, int]], *, bars: bool) -> Chart:
    """A line or bar chart of daily values."""
    values = [v for _, v in points] or [0]
    peak = max(values)
    top = max(peak, 1)
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(points), 1)

    def y_of(value: int) -> float:
        return round(TOP + plot_h - plot_h * value / top, 1)

    line = " ".join(
        f"{round(LEFT + step * (i + 0.5), 1)},{y_of(v)}" for i, (_, v) in enumerate(points)
    )
    drawn = [
        Bar(
            round(LEFT + step * i + step * 0.15, 1),
            y_of(v),
            round(step * 0.7, 1),
            round(TOP + plot_h - y_of(v), 1),
            f"{d.isoformat()}: {v}",
        )
        for i, (d, v) in enumerate(points)
    ]
    middle = [(y_of(top // 2), f"{top // 2:,}")] if top >= 2 else []
    ticks = [(y_of(0), "0"), *middle, (y_of(top), f"{top:,}")]
    first = points[0][0].isoformat() if points else ""
    last = points[-1][0].isoformat() if points else ""
    first_label = _day(points[0][0]) if points else ""
    last_label = _day(points[-1][0]) if points else ""
    summary = (
        f"{title}: from {values[0]:,} on {first} to {values[-1]:,} on {last}, peak {peak:,}"
        if points
        else f"{title}: no data"
    )
    return Chart(
        title,
        WIDTH,
        HEIGHT,
        line,
        drawn if bars else [],
        ticks,
        first_label,
        last_label,
        peak,
        summary,
    )
