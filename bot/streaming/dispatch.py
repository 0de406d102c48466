"""When each queued job of the pacer may start: the lanes, their heaps and the dispatcher loop.

Jobs are queued per channel budget ("lanes": a channel's creates, its edits, or no channel). A lane is either
ready (in a heap ordered by priority, then oldest first-pending time), timed (in a heap of the time its
channel budget/spacing/route block frees), waiting for a completion, or idle. The dispatcher only touches
lanes whose state changed, and sleeps until the earliest timed lane, a freed global slot or a submission.
Starting a job (taking its budgets) is the pacer's: the dispatcher hands it the job to start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.streaming.budgets import INF, TIMER_SLACK, GlobalBudget, RouteBudget, RouteTable, SlidingWindow
from bot.streaming.jobs import Job, Lane, LaneState, PacerStats
from bot.streaming.routes import ChannelBudget

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

# How often idle lanes and route budgets are forgotten, so memory tracks active channels only.
_SWEEP_EVERY = 30.0


@dataclass(frozen=True, slots=True)
class _Run:
    job: Job


@dataclass(frozen=True, slots=True)
class _Held:
    """Only the global budget holds the lane back: it stays ready."""


@dataclass(frozen=True, slots=True)
class _Wait:
    at: float  # INF: until a completion in its channel or on a route
    routes: tuple[RouteBudget[Lane], ...] = ()  # route budgets whose next release should look again


_HELD = _Held()


class Dispatcher:
    """Keeps every lane where its head belongs and starts jobs as their budgets allow."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        global_budget: GlobalBudget,
        routes: RouteTable[Lane],
        channel_limit: int,
        channel_window: float,
        stats: PacerStats,
        start: Callable[[Job, float], None],
        held_until: float = -INF,
    ) -> None:
        self._clock = clock
        self._held_until = held_until  # no channel budget is spent before (see Pacer's hold_at_start)
        self._global = global_budget
        self._routes = routes
        self._channel_limit = channel_limit
        self._channel_window = channel_window
        self._spacing = channel_window / channel_limit
        self._stats = stats
        self._start = start
        self._lanes: dict[ChannelBudget | None, Lane] = {}
        self._ready: list[tuple[int, float, int, int, Lane]] = []
        self._timed: list[tuple[float, int, int, Lane]] = []
        self._timed_seq = itertools.count()
        self._nonglobal_queued = 0  # queued jobs that may run while the global budget is exhausted
        self._wakeup = asyncio.Event()
        # When the sleeping dispatcher will wake on its own; -INF while it runs (it will look anyway).
        self._deadline = -INF
        self._next_sweep = clock() + _SWEEP_EVERY

    # ----------------------------------------------------------------- what the pacer calls

    def lane(self, budget: ChannelBudget | None) -> Lane:
        lane = self._lanes.get(budget)
        if lane is None:
            window = None if budget is None else SlidingWindow(self._channel_limit, self._channel_window)
            if window is not None:
                window.block(self._held_until)
            lane = self._lanes[budget] = Lane(budget, window)
        return lane

    def enqueue(self, job: Job) -> None:
        lane = self.lane(job.route.channel_budget)
        entry = (0 if job.priority else 1, job.first_at, job.seq, job)
        job.entry = entry
        job.lane = lane
        heapq.heappush(lane.heap, entry)
        if not job.route.uses_global:
            self._nonglobal_queued += 1
            lane.nonglobal += 1
        # A non-ready lane may be blocked by its head's route while this job could go: look again.
        if lane.state is not LaneState.READY or lane.head() is job:
            self._schedule_lane(lane, self._clock())

    def unqueue(self, job: Job) -> None:
        job.entry = None  # its heap entry becomes stale and is skipped lazily
        if not job.route.uses_global:
            self._nonglobal_queued -= 1
            if job.lane is not None:
                job.lane.nonglobal -= 1

    def completed(self, lane: Lane | None, now: float) -> None:
        """A slot freed (in ``lane``'s channel, globally or on a route): what waited for it looks again."""
        if lane is not None and lane.state is LaneState.WAITING:
            self._schedule_lane(lane, now)
        self.wake()

    def notify(self, state: RouteBudget[Lane]) -> None:
        """A route budget freed a request: the lanes that waited for it look again."""
        if not state.waiters:
            return
        waiters, state.waiters = state.waiters, set()
        now = self._clock()
        for lane in waiters:
            if lane.state in (LaneState.TIMED, LaneState.WAITING):
                self._schedule_lane(lane, now)

    def wake(self, at: float = -INF) -> None:
        """Wake the sleeping dispatcher if it would sleep past ``at`` (by default: if it sleeps at all)."""
        if at < self._deadline:
            self._wakeup.set()

    def clear(self) -> None:
        """Forget every queued job (the pacer has cancelled them)."""
        for lane in self._lanes.values():
            lane.heap.clear()
            lane.nonglobal = 0
        self._ready.clear()
        self._timed.clear()
        self._nonglobal_queued = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            self._deadline = -INF
            now = self._clock()
            try:
                self._promote(now)
                self._dispatch_ready(now)
                if now >= self._next_sweep:
                    self._sweep(now)
            except Exception:
                # A bug here must not silently stop all Discord traffic; log and keep pacing.
                log.exception("pacer dispatcher step failed")
            deadline = min(self._timed[0][0] if self._timed else INF, self._next_sweep)
            if self._ready:  # lanes held back by the global budget
                deadline = min(deadline, self._global.free_at(now))
            if self._wakeup.is_set():
                continue
            self._deadline = deadline
            timer = None
            if deadline < INF:
                timer = loop.call_later(max(deadline - self._clock(), 0.0) + TIMER_SLACK, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    # ----------------------------------------------------------------- lane states

    def _schedule_lane(self, lane: Lane, now: float) -> None:
        """Put the lane where its head belongs: ready, timed (channel budget/spacing) or waiting."""
        lane.version += 1
        head = lane.head()
        if head is None:
            lane.state = LaneState.IDLE
            return
        at = self._free_at(lane, head, now)
        if at > now:
            self._wait_lane(lane, at)
            return
        lane.state = LaneState.READY
        if head.priority:  # first text and final edits: oldest first, ahead of everything else
            entry = (0, head.first_at, head.seq, lane.version, lane)
        else:
            # Streaming edits and one-offs take turns: a lane just served waits behind every lane that was
            # already waiting, so a burst of one-offs (a history fetch, 🛑 spam) can't hold other channels.
            entry = (1, max(head.first_at, lane.served_at), head.seq, lane.version, lane)
        heapq.heappush(self._ready, entry)
        self.wake()

    def _free_at(self, lane: Lane, head: Job, now: float) -> float:
        """When the lane's channel budget and spacing let ``head`` go."""
        at = now
        if lane.window is not None:
            at = max(at, lane.window.free_at(now))
            if not head.priority:
                at = max(at, lane.last_dispatch + self._spacing)
        return at

    def _wait_lane(self, lane: Lane, at: float) -> None:
        self._stats.throttled += 1
        if at == INF:
            lane.state = LaneState.WAITING  # a completion in this channel or on a route reschedules it
            return
        lane.state = LaneState.TIMED
        heapq.heappush(self._timed, (at, next(self._timed_seq), lane.version, lane))
        self.wake(at)

    # ----------------------------------------------------------------- dispatching

    def _promote(self, now: float) -> None:
        timed = self._timed
        while timed and timed[0][0] <= now:
            _, _, version, lane = heapq.heappop(timed)
            if version == lane.version:
                self._schedule_lane(lane, now)

    def _dispatch_ready(self, now: float) -> None:
        ready = self._ready
        held: list[tuple[int, float, int, int, Lane]] = []
        global_room = self._global.has_room(now)
        while ready:
            if not global_room and self._nonglobal_queued == 0:
                break
            entry = heapq.heappop(ready)
            lane = entry[4]
            if entry[3] != lane.version:
                continue
            head = lane.head()
            if head is None:
                lane.state = LaneState.IDLE
                continue
            match self._pick(lane, head, now, global_room):
                case _Run(job):
                    self._start(job, now)
                    lane.served_at = now
                    global_room = self._global.has_room(now)
                    self._schedule_lane(lane, now)
                case _Held():
                    held.append(entry)
                case _Wait(at, routes):
                    for state in routes:
                        state.waiters.add(lane)
                    lane.version += 1
                    self._wait_lane(lane, at)
        for entry in held:
            heapq.heappush(ready, entry)

    def _pick(self, lane: Lane, head: Job, now: float, global_room: bool) -> _Run | _Held | _Wait:
        """What a ready lane can do now: run its best runnable job, stay ready while only the global budget
        holds it back, or wait."""
        window = lane.window
        if window is not None and window.occupied(now) >= window.limit:
            return _Wait(self._free_at(lane, head, now))  # an unpaced request took the slot meanwhile
        spaced = window is None or now >= lane.last_dispatch + self._spacing
        if spaced and not global_room and lane.nonglobal == 0:
            # Every job waits for the global budget alone: no need to look through them (hundreds of 🛑
            # reactions queue in the no-channel lane while a burst of answers holds the global budget).
            return _HELD
        wait = INF
        held = False
        blocked: list[RouteBudget[Lane]] = []
        for job in itertools.chain((head,), (j for j in lane.jobs_in_order() if j is not head)):
            if not job.priority and not spaced:
                wait = min(wait, lane.last_dispatch + self._spacing)
                break  # every later job is non-priority too
            if job.route.uses_global and not global_room:
                held = True
                continue
            state = self._routes.budget(job.route.key)
            at = state.ready_at(now)
            if at <= now:
                return _Run(job)
            blocked.append(state)
            wait = min(wait, at)
        return _HELD if held else _Wait(wait, tuple(blocked))

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        for budget, lane in list(self._lanes.items()):
            if (
                lane.state is LaneState.IDLE
                and lane.head() is None
                and (lane.window is None or lane.window.occupied(now) == 0)
                and now >= lane.last_dispatch + self._spacing
            ):
                del self._lanes[budget]
        self._routes.sweep(now)
