"""The loop monitor reports a blocked event loop as lag (a one-sided check: a loop blocked for 50 ms runs its
timer at least that late, however slow the machine)."""

from __future__ import annotations

import asyncio
import time

from bot.streaming.load import LoadSample, LoopMonitor


async def test_a_blocked_loop_shows_as_lag() -> None:
    samples: asyncio.Queue[LoadSample] = asyncio.Queue()
    monitor = LoopMonitor(samples.put_nowait, interval=0.01)
    monitor.start()
    try:
        await asyncio.wait_for(samples.get(), 5)  # running
        time.sleep(0.05)  # noqa: ASYNC251 - the loop stuck, as a busy bot's would be
        sample = await asyncio.wait_for(samples.get(), 5)
        assert sample.lag >= 0.05 - 0.01
    finally:
        monitor.stop()
    assert not monitor.running
