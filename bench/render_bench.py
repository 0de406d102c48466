"""`python bench/render_bench.py`: what laying out a reply costs per paced edit, whole text vs growing.

A streaming reply is laid out on every edit (about once a second, some 40 tokens apart). Laying out the whole
text each time costs more the longer the answer; a display's Layout lays out only the open page. Prints the
mean cost per edit, and in all, for answers of 400 to 4,000 realistic tokens (bench/answer_text.py).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/render_bench.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

from bench.answer_text import answer_tokens  # noqa: E402
from bot.streaming.render import Layout, layout  # noqa: E402

TOKENS_PER_EDIT = 40


def texts(tokens: int) -> list[str]:
    """The text at each edit of an answer of ``tokens`` tokens."""
    parts = answer_tokens(tokens)
    return ["".join(parts[:end]) for end in range(TOKENS_PER_EDIT, tokens + 1, TOKENS_PER_EDIT)]


def timed(lay_out: Callable[[str], object], versions: Sequence[str], repeat: int) -> float:
    """Seconds to lay out every version once, the best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in versions:
            lay_out(text)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    header = ("tokens", "pages", "edits", "whole µs/edit", "growing µs/edit", "saved")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 5, 5, 14, 15, 6), strict=True)))
    for tokens in (400, 1000, 2000, 4000):
        versions = texts(tokens)
        whole = timed(lambda text: layout(text, streaming=True), versions, args.repeat)

        # A fresh Layout per run: it keeps what it laid out.
        grown = min(
            timed(functools.partial(Layout().pages, streaming=True), versions, 1) for _ in range(args.repeat)
        )
        pages = len(layout(versions[-1], streaming=False))
        n = len(versions)
        print(
            f"{tokens:>6} {pages:>5} {n:>5} {whole / n * 1e6:>14.0f} {grown / n * 1e6:>15.0f}"
            f" {1 - grown / whole:>6.0%}"
        )


if __name__ == "__main__":
    main()
