"""/usage chart: tokens (or cost) per day over a period, stacked by model, as PNG bytes (matplotlib Agg)."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from datetime import date, timedelta

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: renders into memory
from matplotlib.figure import Figure

from bot.pricing import TokenCounts

WIDTH_PX, HEIGHT_PX, DPI = 1000, 500, 100
BACKGROUND = "#ffffff"
MAX_MODELS = 8  # more stack colours than this stop being readable; the rest are summed as "other"
# Turns one model's tokens on one day into the bar height (tokens, or cost in money).
Measure = Callable[[str, TokenCounts], float]


def tokens(model: str, counts: TokenCounts) -> float:
    return counts.prompt + counts.completion


def render(
    days: Mapping[date, Mapping[str, TokenCounts]],
    *,
    first: date,
    last: date,
    measure: Measure = tokens,
    title: str,
    unit: str,
) -> bytes:
    """One bar per day from ``first`` to ``last`` (empty days too), stacked by model."""
    span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    series = _series(days, span, measure)
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
    axes = figure.add_subplot()
    bottoms = [0.0] * len(span)
    positions = list(range(len(span)))
    for model, heights in series.items():
        axes.bar(positions, heights, bottom=bottoms, label=model, width=0.8)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    step = max(1, len(span) // 10)
    axes.set_xticks(positions[::step], [d.strftime("%b %d") for d in span[::step]])
    axes.set_ylabel(unit)
    axes.set_title(title)
    axes.set_xlim(-0.6, len(span) - 0.4)
    if series:
        axes.legend(loc="upper left", fontsize="small")
    else:
        axes.text(0.5, 0.5, "No usage in this period", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", facecolor=BACKGROUND)
    return out.getvalue()


def _series(
    days: Mapping[date, Mapping[str, TokenCounts]], span: list[date], measure: Measure
) -> dict[str, list[float]]:
    """Per model, a height per day; the biggest models first, the smallest folded into "other"."""
    heights: dict[str, list[float]] = {}
    for i, day in enumerate(span):
        for model, counts in days.get(day, {}).items():
            heights.setdefault(model, [0.0] * len(span))[i] += measure(model, counts)
    ranked = sorted(heights, key=lambda m: -sum(heights[m]))
    if len(ranked) <= MAX_MODELS:
        return {m: heights[m] for m in ranked if any(heights[m])}
    kept = {m: heights[m] for m in ranked[: MAX_MODELS - 1]}
    rest = [heights[m] for m in ranked[MAX_MODELS - 1 :]]
    kept["other"] = [sum(column) for column in zip(*rest, strict=True)]
    return kept
