"""A reasoning model's thinking during one answer: the live "thinking… N s" line while it lasts, and what
stays of it afterwards (a summary line, or the full text as a file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot import status

TICK = 1.0  # seconds between updates of the live line; the pacer drops versions a slow channel can't take


class Thinking:
    def __init__(
        self, show: Callable[[str | None], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._show = show
        self._clock = clock
        self._parts: list[str] = []
        self._started: float | None = None
        self._ended: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def seconds(self) -> float:
        if self._started is None:
            return 0.0
        return (self._ended if self._ended is not None else self._clock()) - self._started

    def add(self, text: str) -> None:
        self._parts.append(text)
        if self._started is None:
            self._started = self._clock()
            self._tick()

    def end(self) -> None:
        """The answer began (or the stream is over): the live line goes."""
        if self._started is None or self._ended is not None:
            return
        self._ended = self._clock()
        if self._timer is not None:
            self._timer.cancel()
        self._show(None)

    def _tick(self) -> None:
        self._show(status.thinking(self.seconds))
        self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)

    def summary(self) -> str | None:
        """The line kept under the answer in the `summary` mode, if the model thought at all."""
        return None if self._started is None else status.thought_for(self.seconds)
