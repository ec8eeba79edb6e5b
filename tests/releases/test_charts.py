"""The pre-saves chart's y axis: a round top whose half (the middle line) is a whole number of pre-saves."""

import datetime as dt
import re

import pytest

from releases import charts


@pytest.mark.parametrize(
    ("most", "labels"),
    [(0, ["0", "1", "2"]), (1, ["0", "1", "2"]), (3, ["0", "2", "4"]), (5, ["0", "5", "10"]), (41, ["0", "50", "100"])],
)
def test_axis_labels_are_whole_numbers_from_zero_to_the_top(most, labels):
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(3)]
    svg = charts.daily_bars([(days[0], 0), (days[1], most), (days[2], 0)], title="Pre-saves per day")

    assert re.findall(r'text-anchor="end">(\d+)</text>', svg) == labels
    assert f"<title>{days[1].isoformat()}: {most}</title>" in svg
