"""MAX_REPLY_PAGES (pure): when an answer overflows, and what of it is kept."""

from __future__ import annotations

from bot.streaming.page_limit import PageLimit
from bot.streaming.render import render

WORDS = "All work and no play makes a dull bot. " * 400  # about 8 pages


def test_fits_until_it_needs_more_pages_then_keeps_whole_pages_and_the_label() -> None:
    limit = PageLimit(3)
    text, overflowed_at = "", None
    for word in WORDS.split(" "):
        text += word + " "
        if overflowed_at is None and len(render(text, streaming=True)) > 3:
            overflowed_at = len(text)
        if limit.exceeded(text):
            break
    # Noticed within a few hundred characters of the overflow, never before it.
    assert overflowed_at is not None and overflowed_at <= len(text) < overflowed_at + 250
    kept = limit.fit(text, "✂️ stopped: too long")
    pages = render(kept, streaming=False, footer="✂️ stopped: too long")
    assert len(pages) == 3 and text.startswith(kept) and pages[-1].endswith("✂️ stopped: too long")
    assert pages[:2] == render(text, streaming=True)[:2]  # the full pages already shown stay as they were


def test_short_answers_are_never_laid_out() -> None:
    limit = PageLimit(8)
    assert not limit.exceeded("x" * 3999)
