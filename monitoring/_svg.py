"""Inline SVG grouped bar charts for the drift report (`monitoring.report`).

A drift chart puts, for every bin, the baseline's share next to the window's, so a reader sees
where the mass moved. It is drawn here from the numbers alone -- no plotting library, no
script -- so the report stays one self-contained file that any browser opens from S3.

Geometry is plain and pinned: a bar's height is its share over the y-axis top times the plot
height, the y-axis top is the column's largest share rounded up to a tick step, and every bin
gets one bar per series, zero-height when the share is 0 (the bar count always equals the bin
count). Coordinates are written with two decimals, so equal input gives byte-equal output.
Every text is HTML-escaped here; callers pass plain strings.

Bin labels are compact (`compact`: three significant digits, 12.3k for 12 345) yet never merge
two distinct edges into one label (`edge_labels` adds digits until they differ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

PLOT_HEIGHT = 180.0
GROUP_WIDTH = 52.0
MIN_PLOT_WIDTH = 480.0
LEFT, RIGHT, TOP, BOTTOM = 52.0, 12.0, 34.0, 78.0
LABEL_CHARS = 16
TICK_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25)
MAX_TICKS = 5
SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


@dataclass(frozen=True)
class Series:
    """One bar per bin: `name` for the legend, `css` the class its bars and swatch carry."""

    name: str
    css: str
    shares: Sequence[float]


def axis_top(largest: float) -> tuple[float, float]:
    """(top, step): the smallest tick step giving at most `MAX_TICKS` ticks up to `largest`.

    Shares are fractions of 1, so the steps stop at 25 %; an all-zero column gets one step.
    """
    for step in TICK_STEPS:
        ticks = max(1, math.ceil(round(largest / step, 9)))
        if ticks <= MAX_TICKS:
            return ticks * step, step
    return 1.0, TICK_STEPS[-1]


def percent(share: float) -> str:
    """A share as a percentage without trailing zeros: 0.025 -> '2.5%', 0.1 -> '10%'."""
    return f"{round(share * 100, 6):g}%"


def compact(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, without exponents where a reader expects none.

    12345 -> '12.3k', 1234567 -> '1.23M', 3456.7 -> '3460', 0.5 -> '0.5', 0.0001234 -> '0.000123';
    only the very small (< 1e-4) and very large (>= 1e15) keep an exponent.
    """
    rounded = float(f"{value:.{digits}g}")
    magnitude = abs(rounded)
    if rounded == 0:
        return "0"
    if magnitude < 1e-4 or magnitude >= 1e15:
        return f"{rounded:.{digits}g}"
    if magnitude >= 1e4:
        scale, suffix = next((s, x) for s, x in SUFFIXES if magnitude >= s)
        return f"{rounded / scale:.{digits}g}{suffix}"
    exponent = int(f"{rounded:e}".partition("e")[2])
    text = f"{rounded:.{max(digits - 1 - exponent, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def edge_labels(edges: Sequence[float]) -> list[str]:
    """Numeric bin labels: '≤ a', 'a–b' (a < x ≤ b), '> z', then 'missing'.

    Three significant digits, more where needed to tell distinct edges apart.
    """
    distinct = sorted(set(edges))
    names: dict[float, str] = {}
    for digits in range(3, 18):
        names = {e: compact(e, digits) for e in distinct}
        if len(set(names.values())) == len(distinct):
            break
    if not edges:
        return ["all values", "missing"]
    middle = [f"{names[a]}–{names[b]}" for a, b in pairwise(edges)]
    return [f"≤ {names[edges[0]]}", *middle, f"> {names[edges[-1]]}", "missing"]


def _f(value: float) -> str:
    return f"{value:.2f}"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """An `<svg>` grouped bar chart: one group per label, one bar per series in each group.

    `title` is the chart's accessible name (`aria-label` and its `<title>`); every series
    needs one share per label. Each bar carries a `<title>` (a hover tooltip) with its exact
    percentage; long labels are shortened on the axis and kept whole in the tooltips.
    """
    if any(len(s.shares) != len(labels) for s in series):
        raise ValueError("every series needs one share per label")
    largest = max((v for s in series for v in s.shares), default=0.0)
    top, step = axis_top(largest)
    plot_width = max(MIN_PLOT_WIDTH, GROUP_WIDTH * len(labels))
    width, height = LEFT + plot_width + RIGHT, TOP + PLOT_HEIGHT + BOTTOM
    group = plot_width / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" width="{_f(width)}" height="{_f(height)}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *_y_axis(top, step, plot_width),
        *_legend(series),
    ]
    for index, label in enumerate(labels):
        left = LEFT + index * group + group * 0.1
        for number, item in enumerate(series):
            share = item.shares[index]
            tall = round(share / top * PLOT_HEIGHT, 2)  # y + height lands on the axis
            parts.append(
                f'<rect class="bar {item.css}" data-bin="{index}" x="{_f(left + number * bar)}" '
                f'y="{_f(TOP + PLOT_HEIGHT - tall)}" width="{_f(bar)}" height="{_f(tall)}">'
                f"<title>{escape(label)}: {escape(item.name)} {share:.2%}</title></rect>"
            )
        centre, below = LEFT + (index + 0.5) * group, TOP + PLOT_HEIGHT + 12
        parts.append(
            f'<text class="bin" x="{_f(centre)}" y="{_f(below)}" text-anchor="end" '
            f'transform="rotate(-35 {_f(centre)} {_f(below)})">{escape(_short(label))}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _y_axis(top: float, step: float, plot_width: float) -> list[str]:
    base = TOP + PLOT_HEIGHT
    lines = [
        f'<line class="axis" x1="{_f(LEFT)}" y1="{_f(TOP)}" x2="{_f(LEFT)}" y2="{_f(base)}"/>',
        f'<line class="axis" x1="{_f(LEFT)}" y1="{_f(base)}" '
        f'x2="{_f(LEFT + plot_width)}" y2="{_f(base)}"/>',
    ]
    for tick in range(round(top / step) + 1):
        y = base - tick * step / top * PLOT_HEIGHT
        if tick:
            lines.append(
                f'<line class="grid" x1="{_f(LEFT)}" y1="{_f(y)}" '
                f'x2="{_f(LEFT + plot_width)}" y2="{_f(y)}"/>'
            )
        lines.append(
            f'<text class="tick" x="{_f(LEFT - 6)}" y="{_f(y + 4)}" text-anchor="end">'
            f"{percent(tick * step)}</text>"
        )
    return lines


def _legend(series: Sequence[Series]) -> list[str]:
    items: list[str] = []
    for number, item in enumerate(series):
        x = LEFT + number * 120
        items.append(
            f'<rect class="swatch {item.css}" x="{_f(x)}" y="8" width="12" height="12"/>'
            f'<text class="legend" x="{_f(x + 18)}" y="18">{escape(item.name)}</text>'
        )
    return items
