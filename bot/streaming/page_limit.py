"""MAX_REPLY_PAGES: how much of a runaway answer fits in its messages (pure)."""

from __future__ import annotations

from bot.streaming.render import Layout, layout, render

# A page's body is at least about half a page (render.py cuts in a page's second half when it can), so the
# layout needs checking only past this many characters a page, and then every so often.
_SURELY_FITS_PER_PAGE = 500
_CHECK_EVERY = 200


class PageLimit:
    """Tells when an answer would need more than ``max_pages`` messages; cheap per delta (a length check),
    laying the text out only every few hundred characters past the point where it could overflow."""

    def __init__(self, max_pages: int) -> None:
        self.max_pages = max_pages
        self._next_check = max_pages * _SURELY_FITS_PER_PAGE
        self._layout = Layout()  # the streaming text only grows: pages already cut are kept

    def exceeded(self, text: str) -> bool:
        if len(text) < self._next_check:
            return False
        pages = len(self._layout.pages(text, streaming=True))
        if pages <= self.max_pages:
            # Each page still to come holds at least about half a page; in the last one, look more often.
            self._next_check = len(text) + max(_CHECK_EVERY, (self.max_pages - pages) * _SURELY_FITS_PER_PAGE)
            return False
        return True

    def fit(self, text: str, footer: str) -> str:
        """The longest start of ``text`` (whole pages, then a shorter last page) that shows in
        ``max_pages`` messages with ``footer`` under it."""
        kept = "".join(page.body for page in layout(text, streaming=False)[: self.max_pages])
        while kept and len(render(kept, streaming=False, footer=footer)) > self.max_pages:
            kept = kept[: -(len(footer) + 1)]
        return kept
