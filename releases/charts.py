"""Server-side SVG charts for the console: plain markup, readable without JavaScript, printable, accessible.

Hand-written rather than a charting library: one bar chart is all the console draws, and an inline SVG with
a <title> per bar needs no script, no static assets and no dependency.
"""

from __future__ import annotations

import datetime as dt

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 180
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 40, 22, 10


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10 × 10^n that is ≥ value (the y axis top): its half, the middle line, is a whole
    number too."""
    magnitude = 1
    while True:
        for step in (2, 4, 10):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def n(value: float) -> str:
    return f"{value:.1f}"


def daily_bars(points: list[tuple[dt.date, int]], *, title: str) -> SafeString:
    """A bar per day, the y axis from 0 to a round number, every seventh day labelled."""
    top = nice_ceiling(max((count for _, count in points), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(points), 1)
    bars = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
        (
            (
                n(PAD_LEFT + i * slot + slot * 0.15),
                n(PAD_TOP + plot_h - plot_h * count / top),
                n(slot * 0.7),
                n(plot_h * count / top),
                day.isoformat(),
                count,
            )
            for i, (day, count) in enumerate(points)
        ),
    )
    labels = format_html_join(
        "",
        '<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (n(PAD_LEFT + i * slot + slot / 2), HEIGHT - 6, day.strftime("%d %b"))
            for i, (day, _) in enumerate(points)
            if (len(points) - 1 - i) % 7 == 0
        ),
    )
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="label" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (PAD_LEFT, WIDTH, n(y), n(y), PAD_LEFT - 6, n(y + 4), value)
            for value, y in ((top * f // 2, PAD_TOP + plot_h - plot_h * f / 2) for f in (0, 1, 2))
        ),
    )
    total = sum(count for _, count in points)
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}: {} in {} days" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        "<title>{}</title>{}{}{}</svg>",
        WIDTH,
        HEIGHT,
        title,
        total,
        len(points),
        title,
        grid,
        bars,
        labels,
    )
