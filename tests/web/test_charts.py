"""The dashboard's SVG charts are laid out from the numbers, and say them in words."""

from datetime import date, timedelta

from tidings.web.admin.charts import chart

DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(4)]


def test_line_chart_points_ticks_and_summary() -> None:
    drawn = chart("Active subscribers", list(zip(DAYS, [0, 10, 40, 20], strict=True)), bars=False)
    points = [tuple(map(float, p.split(","))) for p in drawn.line.split()]
    assert len(points) == 4 and points[2][1] < points[3][1] < points[1][1] < points[0][1]
    assert [label for _, label in drawn.ticks] == ["0", "20", "40"]
    assert drawn.summary == (
        "Active subscribers: from 0 on 2026-11-01 to 20 on 2026-11-04, peak 40"
    )
    assert drawn.bars == []


def test_bar_chart_with_nothing_sent_has_no_repeated_ticks() -> None:
    drawn = chart("Sent", list(zip(DAYS, [0, 0, 0, 0], strict=True)), bars=True)
    assert [label for _, label in drawn.ticks] == ["0", "1"]
    assert all(bar.height == 0 for bar in drawn.bars) and len(drawn.bars) == 4
    assert chart("Sent", [], bars=True).summary == "Sent: no data"
