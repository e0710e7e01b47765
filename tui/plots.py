"""Helpers that draw training curves in ``PlotextPlot`` widgets.

A plot is rebuilt from whole series on every draw, so the cost of a draw
grows with the number of points. ``decimate`` cuts each series down to
about one point per terminal column, and ``RedrawLimiter`` bounds how often
a widget is redrawn, so a fast metrics stream cannot flood a slow terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual_plotext import PlotextPlot

# Minimum seconds between two redraws of one plot: at most 4 per second.
MIN_REDRAW_INTERVAL = 0.25

# Points kept per series when a plot has no size yet, because it is hidden
# or not laid out: about one per column of a very wide terminal. Decimating
# to the zero width of such a plot would keep only the two end points.
UNSIZED_MAX_POINTS = 400

# Magnitude from which axis labels and losses use scientific notation.
COMPACT_FROM = 1e5

# Number of y-axis labels written in scientific notation.
Y_TICKS = 5

# Colours given to series in order, for overlays of several runs.
SERIES_COLORS = (
    "cyan",
    "orange",
    "green",
    "magenta",
    "yellow",
    "blue",
    "red",
    "white",
)


@dataclass
class Series:
    """One curve of a plot: x and y values of equal length and a legend label."""

    label: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    color: str | None = None
    marker: str | None = None


def decimate(
    xs: Sequence[float], ys: Sequence[float], max_points: int
) -> tuple[list[float], list[float]]:
    """Pick at most ``max_points`` evenly spaced points of a series.

    The first and the last point are always kept, so the curve still ends
    at the newest value.

    Args:
        xs: The x values.
        ys: The y values, as many as ``xs``.
        max_points: The maximum number of points returned (at least 2).

    Returns:
        The kept x values and y values.

    Raises:
        ValueError: If ``xs`` and ``ys`` differ in length or ``max_points``
            is less than 2.
    """
    if len(xs) != len(ys):
        raise ValueError(
            f"xs and ys must have the same length, got {len(xs)} and {len(ys)}"
        )
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    count = len(xs)
    if count <= max_points:
        return list(xs), list(ys)
    step = (count - 1) / (max_points - 1)
    indices = sorted({round(i * step) for i in range(max_points)})
    return [xs[i] for i in indices], [ys[i] for i in indices]


class RedrawLimiter:
    """A gate that lets a redraw through at most once per ``min_interval``.

    Call ``mark_dirty`` when new data arrives and ``should_draw`` from a
    timer; ``should_draw`` returns True only when data is pending and the
    last draw is at least ``min_interval`` seconds old.
    """

    def __init__(
        self,
        min_interval: float = MIN_REDRAW_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self._clock = clock
        self._dirty = False
        self._last_draw = -math.inf
        self.draw_count = 0
        """Number of draws let through so far."""

    def mark_dirty(self) -> None:
        """Record that the plot's data changed since the last draw."""
        self._dirty = True

    def force(self) -> None:
        """Let the next ``should_draw`` through at once, such as on a resize."""
        self._dirty = True
        self._last_draw = -math.inf

    def should_draw(self) -> bool:
        """Return True, and count a draw, if a redraw is due now."""
        if not self._dirty:
            return False
        now = self._clock()
        if now - self._last_draw < self.min_interval:
            return False
        self._dirty = False
        self._last_draw = now
        self.draw_count += 1
        return True


def format_number(value: float) -> str:
    """Format a loss or axis value in at most about 9 characters.

    Values of 1e5 or more in magnitude use scientific notation, such as
    ``4.98e+17``, and other values keep 4 decimals.
    """
    if math.isfinite(value) and abs(value) >= COMPACT_FROM:
        return f"{value:.3g}"
    return f"{value:.4f}"


def _set_compact_yticks(plt: Any, low: float, high: float) -> None:
    """Label the y axis in scientific notation when its values are large.

    plotext writes every digit of a tick value, so a loss of 1e17 gave
    labels as wide as the plot.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return
    if max(abs(low), abs(high)) < COMPACT_FROM:
        return
    if high <= low:
        ticks = [low]
    else:
        step = (high - low) / (Y_TICKS - 1)
        ticks = [low + step * index for index in range(Y_TICKS)]
    plt.yticks(ticks, [format_number(tick) for tick in ticks])


def draw_series(
    plot: PlotextPlot,
    series: Sequence[Series],
    title: str = "",
    xlabel: str = "",
    ylim: tuple[float, float] | None = None,
) -> None:
    """Replace what ``plot`` shows with ``series`` and redraw the widget.

    Each series is decimated to the plot's width first, or to
    ``UNSIZED_MAX_POINTS`` while the plot has no width yet.

    Args:
        plot: The widget to draw in.
        series: The curves; empty ones are skipped.
        title: Title above the plot.
        xlabel: Label of the x axis.
        ylim: Fixed (lower, upper) y range, or None to fit the data.
    """
    plt = plot.plt
    plt.clear_figure()
    width = plot.size.width
    max_points = max(width, 2) if width > 0 else UNSIZED_MAX_POINTS
    shown: list[float] = []
    for index, curve in enumerate(series):
        if not curve.xs:
            continue
        xs, ys = decimate(curve.xs, curve.ys, max_points)
        shown.extend(y for y in ys if math.isfinite(y))
        color = curve.color or SERIES_COLORS[index % len(SERIES_COLORS)]
        plt.plot(xs, ys, label=curve.label, color=color, marker=curve.marker)
    if title:
        plt.title(title)
    if xlabel:
        plt.xlabel(xlabel)
    if ylim is not None:
        plt.ylim(*ylim)
        _set_compact_yticks(plt, *ylim)
    elif shown:
        _set_compact_yticks(plt, min(shown), max(shown))
    # PlotextPlot renders from its figure only when the widget itself is
    # refreshed; an app-level refresh reuses the cached render.
    plot.refresh()
