"""The naive pacing most streaming bots use, as a drop-in for bot.streaming.pacer.Pacer (bench only).

Each reply (pacer key) is edited at most once a second, latest text wins; first text and final edits go at
once. There are no channel or global budgets and nothing is learned from rate-limit headers, so Discord's
429s are left to discord.py, which retries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot.streaming.jobs import PacerStats
from bot.streaming.pacer import Pacer
from bot.streaming.routes import Route

__all__ = ["FixedPacer"]

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0


@dataclass
class _Slot:
    """The latest pending version of one key."""

    action: Callable[[], Awaitable[Any]]
    futures: list[asyncio.Future[Any]]
    priority: bool
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class FixedPacer:
    """Same public API as Pacer: start, close, submit, run, cancel, trace_config, stats."""

    def __init__(self, *, global_per_second: int = 50, clock: Callable[[], float] = time.monotonic) -> None:
        del global_per_second  # accepted for signature compatibility: the naive pacer has no global budget
        self._clock = clock
        self._pending: dict[Hashable, _Slot] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._last: dict[Hashable, float] = {}
        self._closed = False
        self.stats = PacerStats()

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("pacer is closed")

    async def close(self) -> None:
        self._closed = True
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        pending, self._pending = self._pending, {}
        for slot in pending.values():
            _cancel_all(slot.futures)

    def submit(
        self, key: Hashable, action: Callable[[], Awaitable[Any]], route: Route, *, priority: bool = False
    ) -> asyncio.Future[Any]:
        del route  # no budgets
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.cancel()
            return fut
        slot = self._pending.get(key)
        if slot is not None:
            slot.action = action
            slot.futures.append(fut)
            self.stats.replaced += 1
            if priority and not slot.priority:
                slot.priority = True
                slot.wake.set()
            return fut
        self._pending[key] = _Slot(action, [fut], priority)
        self.stats.max_queue = max(self.stats.max_queue, len(self._pending))
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key))
        return fut

    def cancel(self, key: Hashable) -> None:
        slot = self._pending.pop(key, None)
        if slot is not None:
            _cancel_all(slot.futures)
            slot.wake.set()

    run = Pacer.run  # built only on submit() and cancel(), which this class provides

    def trace_config(self) -> aiohttp.TraceConfig:
        """Only counts 429s; it never holds a request back."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status == 429:
            self.stats.rate_limited += 1

    async def _work(self, key: Hashable) -> None:
        """One worker per key with pending work, so a key never has two requests in flight."""
        try:
            while (slot := self._pending.get(key)) is not None:
                await self._wait_turn(key, slot)
                if self._pending.get(key) is not slot:
                    continue  # cancelled while waiting
                del self._pending[key]
                self._last[key] = self._clock()
                await self._execute(slot)
        finally:
            self._workers.pop(key, None)

    async def _wait_turn(self, key: Hashable, slot: _Slot) -> None:
        while not slot.priority and self._pending.get(key) is slot:
            delay = self._last.get(key, -math.inf) + EDIT_INTERVAL - self._clock()
            if delay <= 0:
                return
            slot.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.wake.wait(), delay)

    async def _execute(self, slot: _Slot) -> None:
        self.stats.dispatched += 1
        try:
            result = await slot.action()
        except Exception as exc:
            log.warning("request failed: %r", exc)
            for fut in slot.futures:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # logged above; keep asyncio from warning about it
            return
        except BaseException:
            _cancel_all(slot.futures)
            raise
        for fut in slot.futures:
            if not fut.done():
                fut.set_result(result)


def _cancel_all(futures: list[asyncio.Future[Any]]) -> None:
    for fut in futures:
        fut.cancel()
