"""Page layout of replies: limits, cut points, code fences, exact reassembly and prefix stability."""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest

from bot.streaming.render import (
    CLOSE,
    EMPTY_RESPONSE,
    MARKER,
    MIN_LIMIT,
    RESERVED,
    Layout,
    Page,
    fences_balanced,
    layout,
    render,
)

STOP = "⏹ stopped by Alice"
HEAD = re.compile(r"```[A-Za-z0-9_+\-.#]{0,16}\n")


def check(text: str, *, streaming: bool, footer: str = "", limit: int = 2000) -> list[Page]:
    """Assert every documented guarantee of one render; return its pages."""
    pages = layout(text, streaming=streaming, footer=footer, limit=limit)
    contents = [page.content for page in pages]
    assert render(text, streaming=streaming, footer=footer, limit=limit) == contents
    # Reassembly: the bodies are the text verbatim; everything else is an added head or tail.
    assert "".join(page.body for page in pages) == text
    trailer = footer or ("" if streaming or text.strip() else EMPTY_RESPONSE)
    offset = 0
    for i, page in enumerate(pages):
        last = i == len(pages) - 1
        assert 0 < len(page.content) <= limit, (i, page)
        assert fences_balanced(page.content), (i, page)
        # A head is exactly the reopened fence, present iff the previous page closed an open block (a page
        # holding only the trailer continues nothing).
        continued = i > 0 and pages[i - 1].tail.startswith(CLOSE) and page.body != ""
        assert (page.head != "") == continued, (i, page)
        assert page.head == "" or HEAD.fullmatch(page.head), (i, page)
        rest = page.tail
        if last and streaming:
            assert rest.endswith(MARKER)
            rest = rest.removesuffix(MARKER)
            if page.head + page.body + rest:
                assert rest.endswith(" ")
                rest = rest.removesuffix(" ")
        if last and trailer:
            assert rest.endswith(trailer)
            rest = rest.removesuffix(trailer)
            if page.head + page.body + rest:
                assert rest.endswith("\n")
                rest = rest.removesuffix("\n")
        assert rest in ("", CLOSE), (i, page)
        assert (rest == CLOSE) == (not fences_balanced(page.head + page.body)), (i, page)
        # Cuts: after whitespace, before a word; inside a word only when the page is that one word.
        offset += len(page.body)
        if not last and pages[i + 1].body:
            assert not text[offset].isspace(), (i, page)
            if not text[offset - 1].isspace():
                assert not re.search(r"\s", page.body.lstrip()), f"word split at {offset}: {page!r}"
    if streaming:
        assert contents[-1] == MARKER or contents[-1].endswith(" " + MARKER)
    else:
        assert not contents[-1].endswith(MARKER)
    return pages


CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("short", "Hello, world!", {"streaming": True}, ["Hello, world! ▌"]),
    ("short final", "Hello, world!", {"streaming": False}, ["Hello, world!"]),
    ("empty streaming", "", {"streaming": True}, ["▌"]),
    ("empty final", "", {"streaming": False}, [EMPTY_RESPONSE]),
    ("empty final footer", "", {"streaming": False, "footer": STOP}, [STOP]),
    ("empty streaming footer", "", {"streaming": True, "footer": STOP}, [STOP + " ▌"]),
    ("blank final", "  \n", {"streaming": False}, ["  \n\n" + EMPTY_RESPONSE]),
    ("blank streaming", "  \n", {"streaming": True}, ["  \n ▌"]),
    ("fills the room", "x" * 1994, {"streaming": True}, ["x" * 1994 + " ▌"]),
    ("fills the room final", "x" * 1994, {"streaming": False}, ["x" * 1994]),
    # 2000 characters do not fit one page: every page keeps room for a close and the marker.
    ("exact 2000", "word " * 399 + "word!", {"streaming": False}, ["word " * 398, "word word!"]),
    ("exact 2000 streaming", "word " * 399 + "word!", {"streaming": True}, ["word " * 398, "word word! ▌"]),
    ("huge word", "x" * 4500, {"streaming": False}, ["x" * 1994, "x" * 1994, "x" * 512]),
    (
        "huge word between words",
        "see " + "y" * 3000 + " end",
        {"streaming": False},
        ["see ", "y" * 1994, "y" * 1006 + " end"],
    ),
    (
        "paragraph beats later line and space",
        "Intro line.\nA second line that is longer.\n\nNext paragraph words go here.",
        {"streaming": False, "limit": 60},
        ["Intro line.\nA second line that is longer.\n\n", "Next paragraph words go here."],
    ),
    (
        "line beats later spaces",
        "one two three four five six seven\neight nine ten eleven twelve thirteen",
        {"streaming": False, "limit": 60},
        ["one two three four five six seven\n", "eight nine ten eleven twelve thirteen"],
    ),
    (
        "spaces",
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi",
        {"streaming": True, "limit": 60},
        ["alpha beta gamma delta epsilon zeta eta theta iota ", "kappa lambda mu nu xi omicron pi ▌"],
    ),
    (
        "code block on one page",
        "Look:\n```rust\nfn main() {}\n```\nok",
        {"streaming": True},
        ["Look:\n```rust\nfn main() {}\n```\nok ▌"],
    ),
    (
        "open code block while streaming",
        "Look:\n```rust\nfn main",
        {"streaming": True},
        ["Look:\n```rust\nfn main\n``` ▌"],
    ),
    (
        "code block across two pages",
        "Here:\n```python\ndef f(x):\n    return x * 2\n\nprint(f(21))\n```\nDone.",
        {"streaming": False, "limit": 60},
        ["Here:\n```python\ndef f(x):\n    return x * 2\n\n\n```", "```python\nprint(f(21))\n```\nDone."],
    ),
    (
        # The second cut backs off a line so the last page does not start with a bare closing fence.
        "code block across three pages",
        "```js\n" + "".join(f"console.log({i});\n" for i in range(6)) + "```",
        {"streaming": False, "limit": 60},
        [
            "```js\nconsole.log(0);\nconsole.log(1);\nconsole.log(2);\n\n```",
            "```js\nconsole.log(3);\nconsole.log(4);\n\n```",
            "```js\nconsole.log(5);\n```",
        ],
    ),
    (
        "inline and nested backticks are not fences",
        "Use `a`, ``b `c` d`` and ```x``` inline, then more words to force a split here ok",
        {"streaming": False, "limit": 60},
        ["Use `a`, ``b `c` d`` and ```x``` inline, then more ", "words to force a split here ok"],
    ),
    ("trailing whitespace", "Hello   \n\n", {"streaming": True}, ["Hello   \n\n ▌"]),
    ("trailing whitespace final", "Hello   \n\n", {"streaming": False}, ["Hello   \n\n"]),
    (
        "emoji ZWJ sequences are not split",
        "👨‍👩‍👧‍👦" * 20,
        {"streaming": False, "limit": 60},
        ["👨‍👩‍👧‍👦" * 7, "👨‍👩‍👧‍👦" * 7, "👨‍👩‍👧‍👦" * 6],
    ),
    (
        "skin tones stay on their emoji",
        "a" + "👍🏽" * 40,
        {"streaming": False, "limit": 60},
        ["a" + "👍🏽" * 26, "👍🏽" * 14],
    ),
    ("footer on the last page", "Done.", {"streaming": False, "footer": STOP}, ["Done.\n" + STOP]),
    (
        "footer after closing an open fence",
        "```py\nx = 1",
        {"streaming": False, "footer": STOP},
        ["```py\nx = 1\n```\n" + STOP],
    ),
    ("footer on its own page", "x" * 1990, {"streaming": False, "footer": STOP}, ["x" * 1990, STOP]),
]


@pytest.mark.parametrize(("text", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_render_cases(text: str, kwargs: dict[str, Any], expected: list[str]) -> None:
    check(text, **kwargs)
    assert render(text, **kwargs) == expected


def test_fences_balanced() -> None:
    assert fences_balanced("no code")
    assert fences_balanced("```py\nx\n```")
    assert fences_balanced("a\n  ```\nx\n``` ▌")
    assert fences_balanced("inline ```x``` is not a fence line")
    assert not fences_balanced("```py\nx")
    assert not fences_balanced("x\n```")


def test_limit_too_small_is_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        render("hi", streaming=True, limit=MIN_LIMIT - 1)


def test_finished_pages_never_change_while_a_code_block_streams() -> None:
    text = (
        "Here is the program:\n\n```python\n" + "".join(f"print('line {i}')\n" for i in range(300)) + "```\n"
    )
    shown: list[str] = []
    for end in range(0, len(text) + 1, 7):
        pages = render(text[:end], streaming=True)
        assert pages[: len(shown) - 1] == shown[:-1]
        shown = pages
    final = render(text, streaming=False, footer=STOP)
    assert final[: len(shown) - 1] == shown[:-1]
    assert len(final) >= 3 and all(p.startswith("```python\n") for p in final[1:])


# ---- randomised properties (fixed seed) ----------------------------------------------------------

WORDS = [
    "a", "the", "model", "Discord", "streaming", "naïve", "日本語", "👍🏽", "👨‍👩‍👧", "e\u0301",
    "**bold**", "`code`", "``b `c` d``", "```inline```", "—", "x" * 25, "y" * 70,
]  # fmt: skip
SEPARATORS = [" ", " ", " ", " ", "\n", "\n\n", "  ", "\t", " \n"]
FENCES = ["```python\n", "```\n", "  ```js\n", "````\n", "```py`x\n"]
LIMITS = [MIN_LIMIT, 64, 100, 160]


def random_text(rng: random.Random, size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.08:
            piece = ("\n" if parts and not parts[-1].endswith("\n") else "") + rng.choice(FENCES)
        else:
            piece = rng.choice(WORDS) + rng.choice(SEPARATORS)
        parts.append(piece)
        length += len(piece)
    return "".join(parts)


def _visible_pages_possible(text: str, limit: int) -> bool:
    # Only a whitespace run longer than a page can force a whitespace-only (Discord-empty) page.
    longest = max((len(m.group()) for m in re.finditer(r"\s+", text)), default=0)
    return longest < limit - RESERVED - 20


def test_random_texts_keep_all_guarantees() -> None:
    rng = random.Random(20240611)
    for _ in range(150):
        limit = rng.choice(LIMITS)
        text = random_text(rng, rng.randint(0, 600))
        for streaming in (True, False):
            for footer in ("", STOP):
                pages = check(text, streaming=streaming, footer=footer, limit=limit)
                if _visible_pages_possible(text, limit):
                    assert all(page.content.strip() for page in pages)


def assert_prefix_stable(before: list[str], after: list[str]) -> None:
    assert after[: len(before) - 1] == before[:-1]


def test_prefix_stability_char_by_char() -> None:
    rng = random.Random(7)
    for _ in range(12):
        limit = rng.choice(LIMITS)
        text = random_text(rng, 500)
        previous = render("", streaming=True, limit=limit)
        for end in range(1, len(text) + 1):
            current = render(text[:end], streaming=True, limit=limit)
            assert_prefix_stable(previous, current)
            previous = current
        assert_prefix_stable(previous, render(text, streaming=False, limit=limit))
        assert_prefix_stable(previous, render(text, streaming=False, footer=STOP, limit=limit))


def test_prefix_stability_chunk_by_chunk_and_any_extension() -> None:
    rng = random.Random(99)
    for _ in range(40):
        limit = rng.choice([*LIMITS, 2000])
        text = random_text(rng, 6000 if limit == 2000 else 700)
        ends = [0]
        while ends[-1] < len(text):
            ends.append(min(len(text), ends[-1] + rng.randint(1, 40)))
        renders = [render(text[:end], streaming=True, limit=limit) for end in ends]
        for before, after in itertools.pairwise(renders):
            assert_prefix_stable(before, after)
        # Any later text, streaming or final, keeps every finished page of any earlier render.
        for _ in range(10):
            i, j = sorted(rng.sample(range(len(ends)), 2))
            assert_prefix_stable(renders[i], renders[j])
            final = render(text[: ends[j]], streaming=False, footer=rng.choice(["", STOP]), limit=limit)
            assert_prefix_stable(renders[i], final)


def test_a_growing_layout_matches_a_fresh_one_at_every_step() -> None:
    """A display's Layout lays out only the open page; what it returns is what a whole new layout returns,
    chunk by chunk, for a final text with a footer, and for a text that is not the last one grown."""
    rng = random.Random(2026)
    for _ in range(30):
        limit = rng.choice([*LIMITS, 2000])
        text = random_text(rng, 5000 if limit == 2000 else 700)
        growing = Layout(limit)
        end = 0
        while end < len(text):
            end = min(len(text), end + rng.randint(1, 60))
            streaming = end < len(text) or rng.random() < 0.5
            footer = "" if streaming else rng.choice(["", STOP])
            expected = layout(text[:end], streaming=streaming, footer=footer, limit=limit)
            assert growing.pages(text[:end], streaming=streaming, footer=footer) == expected
        trimmed = text[: rng.randint(0, len(text))].rstrip() + " …"  # a final text cut to fit
        assert growing.pages(trimmed, streaming=False, footer=STOP) == layout(
            trimmed, streaming=False, footer=STOP, limit=limit
        )
