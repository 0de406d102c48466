"""The /usage chart: a real PNG of the expected size whose pixels show the stacked models."""

from datetime import date

import numpy as np

from bot.pricing import TokenCounts
from bot.usage_chart import HEIGHT_PX, WIDTH_PX, render
from tests.e2e import BLUE, ORANGE, decode, pixels_of

FIRST, LAST = date(2025, 6, 1), date(2025, 6, 7)


def test_tokens_per_day_stacked_by_model() -> None:
    days = {
        date(2025, 6, 2): {"big": TokenCounts(3, 9000, 1000), "small": TokenCounts(1, 1000, 1000)},
        date(2025, 6, 5): {"big": TokenCounts(1, 4000, 0)},
    }
    picture = decode(render(days, first=FIRST, last=LAST, title="Tokens per day", unit="tokens"))
    assert picture.shape == (HEIGHT_PX, WIDTH_PX, 3)
    assert np.allclose(picture[0, 0], 1.0) and np.allclose(picture[-1, -1], 1.0)  # white background
    blue, orange = pixels_of(picture, BLUE), pixels_of(picture, ORANGE)
    # big: 10,000 + 4,000 tokens of bars; small: 2,000 stacked on top: about seven times less area.
    assert blue > 0 and orange > 0
    assert 4 < blue / orange < 10
    # The June 2 column holds both colours, one above the other: blue at the bottom.
    columns = np.where(np.all(np.abs(picture - ORANGE) < 0.02, axis=-1))
    x = int(np.median(columns[1]))
    stack = [tuple(np.round(picture[y, x], 2)) for y in range(HEIGHT_PX)]
    first_orange = next(y for y, c in enumerate(stack) if np.allclose(c, ORANGE, atol=0.02))
    assert any(np.allclose(c, BLUE, atol=0.02) for c in stack[first_orange:])


def test_an_empty_period_renders_without_bars() -> None:
    picture = decode(render({}, first=FIRST, last=LAST, title="Nothing", unit="tokens"))
    assert picture.shape == (HEIGHT_PX, WIDTH_PX, 3)
    assert pixels_of(picture, BLUE) == 0


def test_cost_measure() -> None:
    days = {date(2025, 6, 3): {"a": TokenCounts(1, 10, 0), "b": TokenCounts(1, 10, 0)}}
    costly = decode(
        render(
            days, first=FIRST, last=LAST, measure=lambda m, c: 5.0 if m == "b" else 1.0, title="", unit="USD"
        )
    )
    # b costs five times a: it is the biggest, so it is stacked first, in blue.
    assert pixels_of(costly, BLUE) > 3 * pixels_of(costly, ORANGE) > 0
