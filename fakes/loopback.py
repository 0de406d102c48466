"""What the loopback fakes share: ``async with`` lifecycle and waiting for their state to change."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Self

# Poll interval for wait_for predicates over state the server does not notify about (e.g. the bot's).
_WAIT_POLL = 0.05


class LoopbackServer(ABC):
    """A fake served on 127.0.0.1. Use ``async with Fake() as fake:`` or ``start()`` / ``close()``.

    Subclasses call ``_changed()`` after every change of the state tests wait on."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _changed(self) -> None:
        # Checked first: FakeLLM calls this per token batch, and the bench mostly has nobody waiting.
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # The contract names the parameter `timeout` (ASYNC109 prefers asyncio.timeout at call sites).
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        what: str = "",
    ) -> None:
        """Wait until ``predicate()`` holds; re-checked on every server state change (and every 50 ms, so
        predicates over bot-side state work too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                name = type(self).__name__
                raise TimeoutError(f"{name}: timed out after {timeout}s waiting for {what or predicate!r}")
            fut: asyncio.Future[None] = loop.create_future()
            # Drop the futures earlier polls timed out on (cancelled), so the list stays short.
            self._waiters = [w for w in self._waiters if not w.done()]
            self._waiters.append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, min(remaining, _WAIT_POLL))
