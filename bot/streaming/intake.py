"""Adaptive admission: how many answers are generated at once, decided from how well the process keeps up.

Answers are admitted while the event loop runs on time and the process has CPU to spare, judged from the
cost per answer measured as they run; beyond that they wait in a queue, in order, and are told their place
in it. An optional hard ceiling (MAX_CONCURRENT_STREAMS) caps the count whatever the measurements say.

An admitted answer costs little until the model's first token; from then on it is *streaming*. The
allowance grows at most to twice the streaming answers (plus a start) per sample, so a burst of requests is
admitted in steps the measurements can follow. What one streaming answer costs is measured while none has
started for a moment (starting one costs extra, once: a connection, database rows), and caps how many fit;
until it is known, no more than the start run, however quiet the loop looks while a burst is still arriving.
It never shrinks below a floor that keeps the queue moving however loaded the machine is. Admitted answers
are never paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.streaming.load import LoadSample, LoopMonitor

log = logging.getLogger(__name__)

START = 200  # admitted at once, before any measurement (about half a core at 40 tokens/s each)
FLOOR = 2  # always admitted, whatever the load
LAG_LIMIT = 0.25  # seconds the loop may run late before admissions pause (edits go out about 1/s)
CPU_LIMIT = 0.8  # share of one core the answers may take
POSITION_REFRESH = 1.0  # seconds between queue-position updates (a reply is edited about once a second)
# A place far back is shown less often, up to this many refreshes apart (one per ten places ahead): with
# 800 waiting, refreshing every place each second doubled the bot's requests to Discord, and its CPU.
FAR_REFRESHES = 10
STEADY = 1.0  # seconds without a new answer before a sample says what a streaming answer costs

# Called with the number of answers ahead while queued, then None once admitted (if it was queued).
PositionCallback = Callable[[int | None], None]


@dataclass(eq=False, slots=True)
class _Waiting:
    admission: asyncio.Future[None]
    on_position: PositionCallback
    shown: int  # the place last shown
    shown_at: float


class Admission:
    """One admitted answer's place."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake
        self.streaming = False

    def started(self) -> None:
        """The model's first token arrived: from now on the answer costs what a running answer costs."""
        if not self.streaming:
            self.streaming = True
            self._intake._streaming += 1
            self._intake._changed_at = self._intake._clock()


class Intake:
    def __init__(
        self, ceiling: int | None = None, *, measure: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``measure=False`` leaves the samples to the caller (tests inject them through sample())."""
        self._clock = clock
        self._ceiling = math.inf if ceiling is None else ceiling
        self._allowance = min(START, self._ceiling)
        self._active = 0
        self._streaming = 0  # admitted answers whose model has started answering
        self._changed_at = clock()  # the last admission or start
        self._cost: float | None = None  # share of a core one streaming answer takes, once measured
        self._queue: deque[_Waiting] = deque()
        self._positions_at = -math.inf
        self._positions_stale = False
        self._paused = False
        self._monitor = LoopMonitor(self.sample) if measure else None

    @property
    def active(self) -> int:
        return self._active

    @property
    def streaming(self) -> int:
        return self._streaming

    @property
    def queued(self) -> int:
        return len(self._queue)

    def busy(self) -> bool:
        """Whether an answer asking now would wait."""
        return bool(self._queue) or self._active >= self._allowance

    @asynccontextmanager
    async def admitted(self, on_position: PositionCallback) -> AsyncIterator[Admission]:
        """Hold an admission for the body; wait for one first if the process is busy."""
        if self.busy():
            await self._wait(on_position)
        else:
            self._active += 1
        self._watch()
        admission = Admission(self)
        try:
            yield admission
        finally:
            self._active -= 1
            self._streaming -= admission.streaming
            self._admit()
            self._watch()

    def sample(self, load: LoadSample) -> None:
        """Adjust the allowance to the latest measurement and admit what it allows."""
        keeping_up = load.lag <= LAG_LIMIT and load.cpu <= CPU_LIMIT
        streaming = self._streaming
        if streaming and self._clock() - self._changed_at >= STEADY:
            self._cost = load.cpu / streaming
        if keeping_up and self._cost:
            fit = CPU_LIMIT / self._cost
            self._allowance = min(self._ceiling, fit, max(self._allowance, 2 * streaming + START))
        elif keeping_up:
            self._allowance = max(self._allowance, min(START, self._ceiling))
        else:
            self._allowance = min(self._allowance, self._active)
        self._allowance = max(self._allowance, min(FLOOR, self._ceiling))
        if self._queue and self._paused == keeping_up:
            self._paused = not keeping_up
            log.info(
                "Admission %s: loop lag %.0f ms, CPU %.0f%%, %d answers running (%d streaming), %d queued",
                "paused" if self._paused else "resumed",
                load.lag * 1000,
                load.cpu * 100,
                self._active,
                self._streaming,
                len(self._queue),
            )
        self._admit()
        if self._positions_stale and self._clock() - self._positions_at >= POSITION_REFRESH:
            self._show_positions()

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    async def _wait(self, on_position: PositionCallback) -> None:
        admission: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = _Waiting(admission, on_position, len(self._queue), self._clock())
        self._queue.append(entry)
        on_position(entry.shown)
        try:
            await admission
        except asyncio.CancelledError:
            if admission.done() and not admission.cancelled():
                self._active -= 1  # admitted just as it was cancelled: give the place back
                self._admit()
            else:
                with contextlib.suppress(ValueError):  # _admit() may have dropped it already
                    self._queue.remove(entry)
                self._positions_stale = True
            raise
        on_position(None)

    def _admit(self) -> None:
        while self._queue and self._active < self._allowance:
            admission = self._queue.popleft().admission
            if admission.done():  # cancelled while waiting; its task has not run its handler yet
                continue
            self._active += 1
            admission.set_result(None)
            self._positions_stale = True
            self._changed_at = self._clock()

    def _show_positions(self) -> None:
        now = self._positions_at = self._clock()
        self._positions_stale = False
        for ahead, waiting in enumerate(self._queue):
            if ahead == waiting.shown:
                continue
            if now - waiting.shown_at < POSITION_REFRESH * min(FAR_REFRESHES, max(1, ahead // 10)):
                self._positions_stale = True  # shown at a later refresh
                continue
            waiting.shown, waiting.shown_at = ahead, now
            waiting.on_position(ahead)

    def _watch(self) -> None:
        """Measure only while there is something to admit or running: an idle bot does no work."""
        if self._monitor is None:
            return
        if self._active or self._queue:
            self._monitor.start()
        else:
            self._monitor.stop()
