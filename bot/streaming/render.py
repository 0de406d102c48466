"""Lay out model text as the Discord message contents ("pages") of one reply.

Pure functions, and :class:`Layout`, which lays out a growing text page by page (the display keeps one per
reply and asks it on every paced edit).

Guarantees (asserted by tests/test_render.py):

* every page is at most ``limit`` characters and never empty;
* while streaming the last page ends with ``" ▌"`` (just ``"▌"`` when there is no text yet);
* pages cut at a paragraph break, else a line break, else a space, never inside a word unless one word is
  longer than a page;
* a code block cut by a page break is closed with ``"\\n```"`` at the end of the page and reopened with
  ``"```<lang>\\n"`` at the start of the next, so every page has balanced fences;
* **exact reassembly**: each page is ``head + body + tail`` (see :class:`Page`). ``head`` is ``""`` or the
  reopened fence ``"```<lang>\\n"``; ``tail`` is, in this order, an optional added close ``"\\n```"``, an
  optional trailer (footer, or ``*(empty response)*`` for a blank final text) preceded by ``"\\n"`` unless
  it starts the page, and an optional marker ``" ▌"`` (``"▌"`` on an otherwise empty page). The bodies are
  consecutive verbatim slices of the text, so ``"".join(bodies) == text``: a cut consumes no characters.
  The whitespace before a cut stays at the end of the earlier page (Discord trims it on display) and the
  next page starts with the first character of the next word;
* **prefix stability**: every page but the last of ``render(T, streaming=True)`` is identical to the same page
  of ``render(T + x, ...)`` streaming or final, footer or not, so a finished page is never edited again. A cut
  is decided only from the ``room + 1`` characters after the page start, which no later text can change,
  and every page reserves room for a fence close and the marker whether or not it ends up needing them.

Fences follow what each Discord message shows, because each page is rendered on its own: a fence line is
any line of the page (the page start counts as a line start) that begins, after spaces or tabs, with three
backticks. Outside a block it opens one (its language is the word glued to the backticks); inside, it
closes it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MARKER = "▌"
EMPTY_RESPONSE = "*(empty response)*"
FENCE = "```"
CLOSE = "\n" + FENCE
MAX_LANG = 16
# Added to every page whether needed or not, so streaming and final renders cut at the same places.
RESERVED = len(CLOSE) + len(" " + MARKER)
MIN_LIMIT = len(FENCE) + MAX_LANG + 1 + RESERVED + 14

_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
_LANG = re.compile(r"`*([A-Za-z0-9_+\-.#]*)")
# A cut candidate is the start of a word that follows whitespace.
_CUT_RUN = re.compile(r"\s+(?=\S)")
_NON_WS = re.compile(r"\S")
_ZWJ = "\u200d"


@dataclass(frozen=True)
class Page:
    head: str  # "" or the reopened fence "```<lang>\n"
    body: str  # a verbatim slice of the text
    tail: str  # added close, trailer and marker, in that order (all optional)

    @property
    def content(self) -> str:
        return self.head + self.body + self.tail


def fences_balanced(page: str) -> bool:
    """True if the page opens as many code blocks as it closes (fence lines as in the module doc)."""
    return len(_FENCE_LINE.findall(page)) % 2 == 0


def render(text: str, *, streaming: bool, footer: str = "", limit: int = 2000) -> list[str]:
    """The message contents of one reply; see the module doc for the guarantees."""
    return [page.content for page in layout(text, streaming=streaming, footer=footer, limit=limit)]


def layout(text: str, *, streaming: bool, footer: str = "", limit: int = 2000) -> list[Page]:
    """Like :func:`render`, keeping each page's added head and tail apart from its verbatim body."""
    return Layout(limit).pages(text, streaming=streaming, footer=footer)


class Layout:
    """The pages of one reply as its text grows. By prefix stability a page once cut can't change while the
    text only grows, so each paced edit lays out the open page alone, not the whole answer again."""

    def __init__(self, limit: int = 2000) -> None:
        if limit < MIN_LIMIT:
            raise ValueError(f"limit must be at least {MIN_LIMIT}, got {limit}")
        self._limit = limit
        self._start()

    def _start(self) -> None:
        self._cut: list[Page] = []
        self._pos = 0  # where the open page starts
        self._lang: str | None = None  # the code block open there (its language), if any
        self._decided = ""  # the text the cuts were decided on: each page's first room + 1 characters

    def pages(self, text: str, *, streaming: bool, footer: str = "") -> list[Page]:
        if not text.startswith(self._decided):  # not the same text grown (a final text trimmed to fit)
            self._start()
        while True:
            head = "" if self._lang is None else f"{FENCE}{self._lang}\n"
            room = self._limit - len(head) - RESERVED
            if len(text) - self._pos <= room:
                break
            window_end = self._pos + room + 1
            cut = self._pos + _choose_cut(
                text[self._pos : window_end], in_block=self._lang is not None, room=room
            )
            body = text[self._pos : cut]
            end_lang = _fence_state(body, self._lang)
            self._cut.append(Page(head, body, "" if end_lang is None else CLOSE))
            self._pos, self._lang = cut, end_lang
            self._decided = text[:window_end]
        return [*self._cut, *self._open_pages(text, head, streaming, footer)]

    def _open_pages(self, text: str, head: str, streaming: bool, footer: str) -> list[Page]:
        """The open page, with the trailer and marker (and a page of its own for a trailer that won't fit)."""
        body = text[self._pos :]
        last = Page(head, body, "" if _fence_state(body, self._lang) is None else CLOSE)
        trailer = footer or ("" if streaming or text.strip() else EMPTY_RESPONSE)
        marker = MARKER if streaming else ""
        pages: list[Page] = []
        if trailer:
            with_trailer = _append(last, trailer, "\n")
            if len(_append(with_trailer, marker, " ").content) <= self._limit:
                last = with_trailer
            else:
                pages.append(last)
                if len(trailer) > self._limit - len(" " + MARKER):  # only an absurd footer; keep it valid
                    trailer = trailer[: self._limit - len(" " + MARKER) - 1] + "…"
                last = Page("", "", trailer)
        pages.append(_append(last, marker, " "))
        return pages


def _append(page: Page, extra: str, separator: str) -> Page:
    if not extra:
        return page
    return Page(page.head, page.body, page.tail + (separator if page.content else "") + extra)


def _fence_state(body: str, lang: str | None) -> str | None:
    """The code block open at the end of ``body`` (its language) given the one open at its start; None if
    outside any block."""
    for match in _FENCE_LINE.finditer(body):
        lang = _opener_lang(body, match.end()) if lang is None else None
    return lang


def _opener_lang(text: str, pos: int) -> str:
    match = _LANG.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    lang, end = match.group(1), match.end()
    # Only a clean word reopens well ("```py`x" or a 40-char "language" is not one).
    if len(lang) > MAX_LANG or (end < len(text) and not text[end].isspace()):
        return ""
    return lang


def _choose_cut(window: str, *, in_block: bool, room: int) -> int:
    """Where to end a page, as an offset in ``1..room`` into ``window`` (the page's ``room + 1`` first
    characters, so the character after any cut is known). Prefers, among cuts in the second half of the
    page, a paragraph break, then a line break, then a space, latest first; then the latest word start at
    all (one leaving no empty code block, if possible); then a hard cut for a word longer than the page."""
    fence_ends = [m.end() for m in _FENCE_LINE.finditer(window)]
    half = room // 2
    best_kind, best, latest, latest_any = -1, 0, 0, 0
    fence_idx, open_block = 0, in_block
    opener_line_end: int | None = None  # where the block opened on this page has its first content line
    for run in _CUT_RUN.finditer(window):
        start, cut = run.span()
        if start == 0:
            continue  # the page would hold only whitespace, which Discord treats as an empty message
        latest_any = cut
        while fence_idx < len(fence_ends) and fence_ends[fence_idx] <= cut:
            open_block = not open_block
            if open_block:
                newline = window.find("\n", fence_ends[fence_idx])
                opener_line_end = len(window) if newline < 0 else newline
            fence_idx += 1
        if open_block:
            # Never leave an empty code block at either side of the cut (it renders as raw backticks).
            if opener_line_end is not None and _NON_WS.search(window, opener_line_end, cut) is None:
                continue
            # A closer right after the cut; near the window's end only its first backticks are visible.
            if window.startswith(FENCE[: len(window) - cut], cut):
                continue
        latest = cut
        if cut >= half:
            kind = min(window.count("\n", start, cut), 2)  # 2 paragraph, 1 line, 0 space
            if kind >= best_kind:
                best_kind, best = kind, cut
    return best or latest or latest_any or _hard_cut(window, room)


def _hard_cut(window: str, room: int) -> int:
    """Cut a too-long word at ``room``, stepping back a little to keep combining marks and emoji sequences
    (ZWJ, skin tones, variation selectors) with their base character."""
    cut = room
    for _ in range(8):
        if cut <= 1 or not _joins_previous(window[cut - 1], window[cut]):
            break
        cut -= 1
    return cut


def _joins_previous(before: str, char: str) -> bool:
    return bool(
        unicodedata.combining(char)
        or _ZWJ in (before, char)
        or "\ufe00" <= char <= "\ufe0f"  # variation selectors (emoji presentation)
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin-tone modifiers
    )
