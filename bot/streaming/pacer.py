"""One scheduler for every outgoing Discord REST request of the bot.

Streams hand the pacer *jobs* (an async callable plus the budgets it spends); the pacer decides when each
runs so that no budget is ever exceeded:

* ``global``: ``global_per_second - global_headroom`` paced requests per ``global_window`` (the headroom is
  for requests the trace sees but the pacer did not schedule);
* ``channel:<id>``: ``channel_limit`` message creates/edits per ``channel_window``;
* ``route:<key>``: learned from response headers (remaining/reset, 429 retry-after).

Windows are sliding and measured with completion times: a request holds a slot from dispatch until it
completes and for ``window`` seconds after that. Any fixed server window ``[t, t + window)`` can then only
contain requests that were in flight or completed less than ``window`` before the last of them was
dispatched, so the server never sees more than ``limit`` whatever the network latency.

Jobs are queued per channel ("lanes"). A lane is either ready (in a heap ordered by priority, then oldest
first-pending time), timed (in a heap of the time its channel budget/spacing/route block frees), waiting for
a completion, or idle. The dispatcher only touches lanes whose state changed, and sleeps until the earliest
timed lane, a freed global slot or a submission. Re-submitting a key that is already pending only swaps the
action (latest wins), which is O(1) and does not wake the dispatcher.

Layout: the budgets themselves (sliding windows, the global budget, route buckets learned from headers) are
bookkeeping in ``bot.streaming.budgets``; this module owns the queues, the dispatcher and the aiohttp trace
hooks. The hooks stay here because they claim, free and reschedule the same jobs and lanes the dispatcher
does.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from bot.streaming import routes
from bot.streaming.budgets import INF, GlobalBudget, RouteBudget, RouteTable, SlidingWindow, retry_after

__all__ = ["Pacer", "PacerStats"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# How often idle lanes and route budgets are forgotten, so memory tracks active channels only.
_SWEEP_EVERY = 30.0
# Small margin so a timer never fires a hair before the slot it waits for is free (avoids a respin).
_TIMER_SLACK = 0.0005
# Poll period for unpaced requests waiting only on in-flight requests to complete (rare path).
_UNPACED_POLL = 0.02

# Which budgets a job's first matching request already holds (reserved at dispatch).
_CLAIM_GLOBAL = 1
_CLAIM_CHANNEL = 2
_CLAIM_ROUTE = 4

# Lane states.
_IDLE, _READY, _TIMED, _WAITING = "idle", "ready", "timed", "waiting"
# _pick's answer when only the global budget holds a lane back.
_HOLD = object()


@dataclass(slots=True)
class PacerStats:
    dispatched: int = 0  # jobs started
    replaced: int = 0  # pending versions superseded by a newer submit (never sent)
    throttled: int = 0  # times queued work or an unpaced request had to wait for a budget/spacing/block
    rate_limited: int = 0  # 429 responses seen by the trace
    unpaced: int = 0  # API requests seen by the trace that no job issued
    max_queue: int = 0  # most jobs pending at once


class _Lane:
    """Pending jobs of one channel (or of no channel) plus that channel's message budget."""

    __slots__ = ("channel_id", "heap", "last_dispatch", "state", "version", "window")

    def __init__(self, channel_id: int | None, window: SlidingWindow | None) -> None:
        self.channel_id = channel_id
        self.window = window
        self.heap: list[tuple[int, float, int, _Job]] = []
        self.last_dispatch = -INF
        self.state = _IDLE
        # Bumped on every reschedule; heap entries carrying an older version are stale.
        self.version = 0

    def head(self) -> _Job | None:
        heap = self.heap
        while heap and heap[0][3].entry is not heap[0]:
            heapq.heappop(heap)
        return heap[0][3] if heap else None

    def jobs_in_order(self) -> Iterator[_Job]:
        for entry in sorted(self.heap):
            if entry[3].entry is entry:
                yield entry[3]


@dataclass(slots=True, eq=False)
class _Job:
    """The latest action submitted under ``key`` and everyone awaiting it, while pending or running."""

    key: Hashable
    action: Callable[[], Awaitable[Any]]
    channel_id: int | None
    route: str
    uses_global: bool
    priority: bool
    first_at: float
    seq: int
    futures: list[asyncio.Future[Any]]
    entry: tuple[int, float, int, _Job] | None = None  # live lane-heap entry while queued
    lane: _Lane | None = None
    parked: bool = False  # waiting for the in-flight job of the same key
    claimed: int = 0
    released: int = 0  # budgets already freed when the claimed request's response arrived

    def claim(self, counts_global: bool, channel_id: int | None, route: str) -> int:
        """Hand a request of this job the budgets reserved at dispatch that it matches (each only once)."""
        claim = 0
        if counts_global and self.uses_global and not self.claimed & _CLAIM_GLOBAL:
            claim |= _CLAIM_GLOBAL
        if channel_id is not None and channel_id == self.channel_id and not self.claimed & _CLAIM_CHANNEL:
            claim |= _CLAIM_CHANNEL
        if route == self.route and not self.claimed & _CLAIM_ROUTE:
            claim |= _CLAIM_ROUTE
            # A webhook path names no channel, but the job's declared route is the request it paces.
            if self.channel_id is not None and not self.claimed & _CLAIM_CHANNEL:
                claim |= _CLAIM_CHANNEL
        self.claimed |= claim
        return claim


class Pacer:
    """Schedules every Discord REST job of the bot; see the module docstring."""

    def __init__(
        self,
        *,
        global_per_second: int = 50,
        global_headroom: int = 5,
        channel_limit: int = 5,
        channel_window: float = 5.0,
        global_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if global_per_second - global_headroom < 1 or channel_limit < 1:
            raise ValueError("every budget needs a limit of at least 1")
        self._clock = clock
        self._global = GlobalBudget(global_per_second - global_headroom, global_per_second, global_window)
        self._channel_limit = channel_limit
        self._channel_window = channel_window
        self._spacing = channel_window / channel_limit
        self._pending: dict[Hashable, _Job] = {}
        self._running: dict[Hashable, _Job] = {}
        self._lanes: dict[int | None, _Lane] = {}
        self._ready: list[tuple[int, float, int, int, _Lane]] = []
        self._timed: list[tuple[float, int, int, _Lane]] = []
        self._routes: RouteTable[_Lane] = RouteTable()
        self._nonglobal_queued = 0  # queued jobs that may run while the global budget is exhausted
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        # When the sleeping dispatcher will wake on its own; -INF while it runs (it will look anyway).
        self._deadline = -INF
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self._next_sweep = clock() + _SWEEP_EVERY
        self._current: contextvars.ContextVar[_Job | None] = contextvars.ContextVar(
            f"pacer_job_{id(self)}", default=None
        )
        self.stats = PacerStats()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("pacer is closed")
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop(), name="pacer")

    async def close(self) -> None:
        """Stop dispatching, wait for in-flight jobs, then cancel the futures of jobs still pending."""
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.wait([self._dispatcher])
            self._dispatcher = None
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        pending, self._pending = self._pending, {}
        for job in pending.values():
            for fut in job.futures:
                fut.cancel()
        for lane in self._lanes.values():
            lane.heap.clear()
        self._ready.clear()
        self._timed.clear()
        self._nonglobal_queued = 0

    # ----------------------------------------------------------------- public API

    def submit(
        self,
        key: Hashable,
        action: Callable[[], Awaitable[Any]],
        *,
        channel_id: int | None,
        route: str,
        uses_global: bool,
        priority: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue ``action`` under ``key``; a pending job with the same key is replaced (latest wins).

        The returned future gets the action's result or exception; futures of replaced versions get the
        outcome of the version that finally runs.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.cancel()
            return fut
        job = self._pending.get(key)
        if job is not None:
            job.action = action
            job.futures.append(fut)
            job.route = route
            self.stats.replaced += 1
            moved = job.channel_id != channel_id or job.uses_global != uses_global
            if moved or (priority and not job.priority):
                queued = job.entry is not None
                if queued:
                    self._unqueue(job)
                job.channel_id, job.uses_global = channel_id, uses_global
                job.priority = job.priority or priority
                if queued:
                    self._enqueue(job)
            return fut
        job = _Job(
            key, action, channel_id, route, uses_global, priority, self._clock(), next(self._seq), [fut]
        )
        self._pending[key] = job
        self.stats.max_queue = max(self.stats.max_queue, len(self._pending))
        if key in self._running:
            job.parked = True  # never two requests in flight for one key
        else:
            self._enqueue(job)
        return fut

    def cancel(self, key: Hashable) -> None:
        """Drop the pending (not yet started) job for ``key``; its futures are cancelled."""
        job = self._pending.pop(key, None)
        if job is None:
            return
        if job.entry is not None:
            self._unqueue(job)
        for fut in job.futures:
            fut.cancel()

    async def run(
        self, action: Callable[[], Awaitable[T]], *, channel_id: int | None, route: str, uses_global: bool
    ) -> T:
        """Run a one-off priority job and return its result."""
        key = object()
        fut = self.submit(
            key, action, channel_id=channel_id, route=route, uses_global=uses_global, priority=True
        )
        try:
            return await fut
        except asyncio.CancelledError:
            self.cancel(key)
            raise

    def trace_config(self) -> aiohttp.TraceConfig:
        """Trace hooks for the bot's aiohttp session (``commands.Bot(http_trace=...)``)."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_end.append(self._on_request_end)
        trace.on_request_exception.append(self._on_request_exception)
        return trace

    # ----------------------------------------------------------------- queues

    def _lane(self, channel_id: int | None) -> _Lane:
        lane = self._lanes.get(channel_id)
        if lane is None:
            window = None if channel_id is None else SlidingWindow(self._channel_limit, self._channel_window)
            lane = self._lanes[channel_id] = _Lane(channel_id, window)
        return lane

    def _enqueue(self, job: _Job) -> None:
        lane = self._lane(job.channel_id)
        entry = (0 if job.priority else 1, job.first_at, job.seq, job)
        job.entry = entry
        job.lane = lane
        heapq.heappush(lane.heap, entry)
        if not job.uses_global:
            self._nonglobal_queued += 1
        # A non-ready lane may be blocked by its head's route while this job could go: look again.
        if lane.state != _READY or lane.head() is job:
            self._schedule_lane(lane, self._clock())

    def _unqueue(self, job: _Job) -> None:
        job.entry = None  # its heap entry becomes stale and is skipped lazily
        if not job.uses_global:
            self._nonglobal_queued -= 1

    def _schedule_lane(self, lane: _Lane, now: float) -> None:
        """Put the lane where its head belongs: ready, timed (channel budget/spacing) or waiting."""
        lane.version += 1
        head = lane.head()
        if head is None:
            lane.state = _IDLE
            return
        at = now
        if lane.window is not None:
            at = max(at, lane.window.free_at(now))
            if not head.priority:
                at = max(at, lane.last_dispatch + self._spacing)
        if at <= now:
            lane.state = _READY
            rank = 0 if head.priority else 1
            heapq.heappush(self._ready, (rank, head.first_at, head.seq, lane.version, lane))
            if self._deadline != -INF:
                self._wakeup.set()
            return
        self.stats.throttled += 1
        self._wait_lane(lane, at)

    def _wait_lane(self, lane: _Lane, at: float) -> None:
        if at == INF:
            lane.state = _WAITING  # a completion in this channel or on a route reschedules it
            return
        lane.state = _TIMED
        heapq.heappush(self._timed, (at, next(self._seq), lane.version, lane))
        if at < self._deadline:
            self._wakeup.set()

    def _notify(self, state: RouteBudget[_Lane]) -> None:
        if not state.waiters:
            return
        waiters, state.waiters = state.waiters, set()
        now = self._clock()
        for lane in waiters:
            if lane.state in (_TIMED, _WAITING):
                self._schedule_lane(lane, now)

    # ----------------------------------------------------------------- dispatcher

    async def _dispatch_loop(self) -> None:
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
                timer = loop.call_later(max(deadline - self._clock(), 0.0) + _TIMER_SLACK, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def _promote(self, now: float) -> None:
        timed = self._timed
        while timed and timed[0][0] <= now:
            _, _, version, lane = heapq.heappop(timed)
            if version == lane.version:
                self._schedule_lane(lane, now)

    def _dispatch_ready(self, now: float) -> None:
        ready = self._ready
        held: list[tuple[int, float, int, int, _Lane]] = []
        global_room = self._global.has_room(now)
        while ready:
            if not global_room and self._nonglobal_queued == 0:
                break
            entry = heapq.heappop(ready)
            lane = entry[4]
            if entry[3] != lane.version:
                continue
            job = self._pick(lane, now, global_room)
            if job is _HOLD:
                held.append(entry)
            elif isinstance(job, _Job):
                self._start(job, now)
                global_room = self._global.has_room(now)
                self._schedule_lane(lane, now)
        for entry in held:
            heapq.heappush(ready, entry)

    def _pick(self, lane: _Lane, now: float, global_room: bool) -> _Job | object | None:
        """The best runnable job of a ready lane; _HOLD if only the global budget blocks it; None after
        putting the lane back to wait."""
        head = lane.head()
        if head is None:
            lane.state = _IDLE
            return None
        if lane.window is not None and lane.window.occupied(now) >= lane.window.limit:
            self._schedule_lane(lane, now)  # an unpaced request took the slot meanwhile
            return None
        spaced = lane.window is None or now >= lane.last_dispatch + self._spacing
        wait = INF
        held = False
        for job in itertools.chain((head,), (j for j in lane.jobs_in_order() if j is not head)):
            if not job.priority and not spaced:
                wait = min(wait, lane.last_dispatch + self._spacing)
                break  # every later job is non-priority too
            if job.uses_global and not global_room:
                held = True
                continue
            state = self._routes.budget(job.route)
            at = state.ready_at(now)
            if at <= now:
                return job
            state.waiters.add(lane)
            wait = min(wait, at)
        if held:
            return _HOLD
        lane.version += 1
        self.stats.throttled += 1
        self._wait_lane(lane, wait)
        return None

    def _start(self, job: _Job, now: float) -> None:
        del self._pending[job.key]
        self._unqueue(job)
        self._running[job.key] = job
        lane = job.lane
        assert lane is not None
        if lane.window is not None:
            lane.window.acquire()
            lane.last_dispatch = now
        if job.uses_global:
            self._global.window.acquire()
        self._routes.budget(job.route).reserve(now)
        self.stats.dispatched += 1
        task = asyncio.get_running_loop().create_task(self._run_job(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: _Job) -> None:
        self._current.set(job)  # lets the trace recognise this job's request (the task has its own context)
        try:
            result = await job.action()
        except Exception as exc:
            self._release(job)
            log.warning("paced request failed (route %s): %s", job.route, routes.redact(f"{exc!r}"))
            log.debug("paced request traceback:\n%s", routes.redact("".join(traceback.format_exception(exc))))
            for fut in job.futures:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # already logged: don't let asyncio warn about unretrieved futures
            return
        except BaseException:  # cancelled (loop shutdown): free the budgets, then propagate
            self._release(job)
            for fut in job.futures:
                fut.cancel()
            raise
        self._release(job)
        for fut in job.futures:
            if not fut.done():
                fut.set_result(result)

    def _release(self, job: _Job) -> None:
        now = self._clock()
        del self._running[job.key]
        lane = job.lane
        assert lane is not None
        self._free_budgets(job, _CLAIM_GLOBAL | _CLAIM_CHANNEL | _CLAIM_ROUTE, now)
        successor = self._pending.get(job.key)
        if successor is not None and successor.parked:
            successor.parked = False
            self._enqueue(successor)
        if lane.state == _WAITING:
            self._schedule_lane(lane, now)
        if self._deadline != -INF:
            self._wakeup.set()  # a global slot or route may have freed

    def _free_budgets(self, job: _Job, which: int, now: float) -> None:
        """Free the slots a job holds (once each): at its request's response, else when its action ends."""
        which &= ~job.released
        job.released |= which
        lane = job.lane
        assert lane is not None
        if which & _CLAIM_CHANNEL and lane.window is not None:
            lane.window.release(now)
        if which & _CLAIM_GLOBAL and job.uses_global:
            self._global.window.release(now)
        if which & _CLAIM_ROUTE:
            self._release_route(job.route, now)

    def _release_route(self, key: str, now: float) -> None:
        state = self._routes.budget(key)
        state.release(now)
        self._notify(state)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        for channel_id, lane in list(self._lanes.items()):
            if (
                lane.state == _IDLE
                and lane.head() is None
                and (lane.window is None or lane.window.occupied(now) == 0)
                and now >= lane.last_dispatch + self._spacing
            ):
                del self._lanes[channel_id]
        self._routes.sweep(now)

    # ----------------------------------------------------------------- trace hooks

    async def _on_request_start(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.route = None
        path = routes.api_path(params.url.path)
        if path is None:
            return  # CDN, gateway: not a REST API call
        method = params.method.upper()
        counts_global = routes.uses_global(method, path)
        channel_id = routes.message_budget_channel(method, path)
        key = routes.route_key(method, path)
        job = self._current.get()
        if job is None:
            self.stats.unpaced += 1
            claim = 0
        else:
            claim = job.claim(counts_global, channel_id, key)
        need_global = counts_global and not claim & _CLAIM_GLOBAL
        lane = self._lane(channel_id) if channel_id is not None and not claim & _CLAIM_CHANNEL else None
        window = lane.window if lane is not None else None
        now = await self._wait_for_hard_limits(need_global, window)
        ctx.slots = []
        if need_global:
            self._global.window.acquire()
            ctx.slots.append(self._global.window)
        if window is not None:
            window.acquire()
            ctx.slots.append(window)
        ctx.lane = lane
        ctx.job, ctx.claim = job, claim
        ctx.route = key
        ctx.route_reserved = not claim & _CLAIM_ROUTE
        if ctx.route_reserved:
            self._routes.budget(key).reserve(now)

    async def _wait_for_hard_limits(self, need_global: bool, window: SlidingWindow | None) -> float:
        """Wait until the budgets a traced request spends itself (not claimed from a job) have room; returns
        that time. Requests the pacer did not schedule may use the global headroom, never the hard limit."""
        waited = False
        while True:
            now = self._clock()
            at = now
            if need_global:
                at = max(at, self._global.unpaced_free_at(now))
            if window is not None:
                at = max(at, window.free_at(now))
            if at <= now:
                return now
            if not waited:
                waited = True
                self.stats.throttled += 1
            await asyncio.sleep(at - now + _TIMER_SLACK if at < INF else _UNPACED_POLL)

    async def _on_request_end(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        key: str | None = ctx.route
        if key is None:
            return
        now = self._clock()
        response = params.response
        state = self._routes.learn(key, response.headers, now)
        if response.status == 429:
            self._on_429(key, state, response.headers, now)
        self._finish_traced(ctx, now)
        self._notify(state)

    async def _on_request_exception(
        self,
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        if ctx.route is not None:
            self._finish_traced(ctx, self._clock())

    def _on_429(
        self, key: str, state: RouteBudget[_Lane], headers: CIMultiDictProxy[str], now: float
    ) -> None:
        self.stats.rate_limited += 1
        wait = retry_after(headers)
        scope = headers.get("X-RateLimit-Scope", "")
        is_global = headers.get("X-RateLimit-Global", "").lower() == "true" or scope == "global"
        log.warning("429 on %s (scope=%s, global=%s): blocking for %.3fs", key, scope or "?", is_global, wait)
        if is_global:
            self._global.block(now + wait)
        else:
            state.block(now + wait)

    def _finish_traced(self, ctx: SimpleNamespace, now: float) -> None:
        job: _Job | None = ctx.job
        if job is not None and ctx.claim:
            # The server has answered: free the job's slots now, not when its action returns (discord.py may
            # still sleep out an exhausted bucket inside the call).
            self._free_budgets(job, ctx.claim, now)
            if job.lane is not None and job.lane.state == _WAITING:
                self._schedule_lane(job.lane, now)
        slots: list[SlidingWindow] = ctx.slots
        for window in slots:
            window.release(now)
        slots.clear()
        if ctx.route_reserved:
            ctx.route_reserved = False
            self._release_route(ctx.route, now)
        lane: _Lane | None = ctx.lane
        if lane is not None and lane.state == _WAITING:
            self._schedule_lane(lane, now)
        if self._deadline != -INF:
            self._wakeup.set()
