"""The live thinking line (pure, with a fake clock; the loop's timer drives the ticks)."""

from __future__ import annotations

import asyncio

from bot.streaming.thinking import Thinking


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_live_line_ticks_then_clears_and_summarises() -> None:
    shown: list[str | None] = []
    ticked = asyncio.Event()
    clock = Clock()

    def show(line: str | None) -> None:
        shown.append(line)
        ticked.set()

    thinking = Thinking(show, clock)
    assert thinking.summary() is None
    thinking.add("Hmm, ")
    assert shown == ["💭 thinking… 0 s"]
    clock.now, ticked = 112.4, asyncio.Event()
    await asyncio.wait_for(ticked.wait(), 5)
    assert shown[-1] == "💭 thinking… 12 s"
    thinking.add("right.")
    clock.now = 113.0
    thinking.end()
    thinking.end()
    assert shown[-1] is None and shown.count(None) == 1
    assert (thinking.text, thinking.summary()) == ("Hmm, right.", "💭 thought for 13 s")
