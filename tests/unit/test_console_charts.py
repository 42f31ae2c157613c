"""The console's server-drawn charts and policy diffs, without a server."""

from __future__ import annotations

from services.console.pages.admin import as_yaml, diff_rows
from services.console.pages.charts import BAR_SPACE, bar_chart


def test_bars_scale_to_the_largest_value_and_a_small_one_stays_visible() -> None:
    chart = bar_chart("c", "t", "d", [("a", 1000, "1,000"), ("b", 1, "1"), ("z", 0, "0")])
    widths = [bar.width for bar in chart.bars]
    assert widths == [BAR_SPACE, 1, 0]  # a non-zero value never vanishes; zero draws nothing
    assert [bar.y for bar in chart.bars] == sorted({bar.y for bar in chart.bars})
    assert chart.height >= chart.bars[-1].y + chart.bars[-1].height
    assert bar_chart("e", "t", "d", []).bars == []  # no rows: an empty chart, not an error


def test_a_diff_lists_only_the_changed_lines_with_their_numbers() -> None:
    old = as_yaml({"version": "1", "limit": {"CNY": "500.00"}, "max_risk": 30})
    new = as_yaml({"version": "2", "limit": {"CNY": "500.00"}, "max_risk": 25, "extra": True})
    rows = diff_rows(old, new)
    changed = {(row["old"], row["new"]) for row in rows}
    assert ("max_risk: 30", "max_risk: 25") in changed
    assert ("version: '1'", "version: '2'") in changed
    assert (None, "extra: true") in changed
    assert all("CNY" not in str(row["old"]) for row in rows)  # unchanged lines left out
    assert diff_rows(old, old) == []
