"""The bench's model answer: realistic text (words of 2-12 characters, punctuation, paragraphs, a fenced code
block), and which of its tokens any message version shows.

A token is visible once its last character is: each token is mapped to its character offsets in the full
answer, and each page of the reply is a verbatim slice of it (bot/streaming/render.py guarantees it), so a
version's visible prefix of its page's slice says which tokens it shows.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Sequence

from bot.streaming.render import CLOSE, MARKER, layout, render

# Word lengths 2..12, short words commoner, as in English prose.
_LENGTHS = range(2, 13)
_LENGTH_WEIGHTS = (14, 16, 14, 12, 10, 9, 7, 6, 5, 4, 3)
_CODE = (
    "def {a}({b}, {c}):\n"
    "    if not {b}:\n"
    "        return []\n"
    "    {d} = [{c}({e}) for {e} in {b}]\n"
    "    return sorted({d}, key=len)\n"
)
# A token keeps its leading whitespace: " word", ",", "\n\nThe", "    return".
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s]+)|\s+")


def answer_tokens(count: int, seed: int = 13) -> list[str]:
    """``count`` tokens of prose with a fenced code block about a third of the way in."""
    rng = random.Random(seed)
    parts: list[str] = []
    tokens = 0
    code_at = count // 3
    while tokens < count:
        if code_at is not None and tokens >= code_at:
            names = {k: _word(rng) for k in "abcde"}
            block = "```python\n" + _CODE.format(**names) + "```\n\n"
            code_at = None
        else:
            block = _paragraph(rng) + "\n\n"
        parts.append(block)
        tokens += len(_TOKEN.findall(block))
    tokens_list = _TOKEN.findall("".join(parts).rstrip())
    assert "".join(tokens_list) == "".join(parts).rstrip()
    return tokens_list[:count]


def _word(rng: random.Random) -> str:
    length = rng.choices(_LENGTHS, _LENGTH_WEIGHTS)[0]
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=length))


def _paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(2, 5)):
        words = [_word(rng) for _ in range(rng.randint(6, 16))]
        words[0] = words[0].capitalize()
        for i in range(1, len(words) - 1):
            if rng.random() < 0.08:
                words[i] += ","
        sentences.append(" ".join(words) + rng.choice(".....?!:"))
    return " ".join(sentences)


class Answer:
    """The full answer and where each of its tokens and final pages lie in it."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.text = "".join(tokens)
        ends, at = [], 0
        for token in tokens:
            at += len(token)
            ends.append(at)
        self._ends = ends
        self._pages = layout(self.text, streaming=False)
        starts, at = [], 0
        for page in self._pages:
            starts.append(at)
            at += len(page.body)
        self._starts = starts
        self._final = render(self.text, streaming=False)

    def span(self, page: int, content: str) -> tuple[int, int] | None:
        """First and last token index shown by this version of the reply's page ``page``."""
        if page >= len(self._pages):
            return None
        head, start = self._pages[page].head, self._starts[page]
        if not content.startswith(head):
            return None
        shown = start + self._visible(content[len(head) :], start)
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_right(self._ends, shown) - 1
        return (lo, hi) if lo <= hi else None

    def _visible(self, body: str, start: int) -> int:
        """How many characters of the answer from ``start`` the page body shows (added tail removed)."""
        for suffix in (" " + MARKER, MARKER):
            if body.endswith(suffix):
                body = body[: -len(suffix)]
                break
        if self.text.startswith(body, start):
            return len(body)
        if body.endswith(CLOSE) and self.text.startswith(body[: -len(CLOSE)], start):
            return len(body) - len(CLOSE)
        same = 0  # a footer or other added line: the longest common prefix
        for mine, theirs in zip(body, self.text[start : start + len(body)], strict=False):
            if mine != theirs:
                break
            same += 1
        return same

    def complete(self, contents: Sequence[str]) -> bool:
        """Whether the final pages show exactly the whole answer."""
        return list(contents) == self._final
