"""One scheduler for every outgoing Discord REST request of the bot.

Streams hand the pacer *jobs* (an async callable plus the ``Route`` of the request it sends); the pacer
decides when each runs so that no budget is ever exceeded:

* ``global``: ``global_per_second - global_headroom`` paced requests per ``global_window`` (the headroom is
  for requests the trace sees but the pacer did not schedule);
* ``channel:<id>``: ``channel_limit`` message creates per ``channel_window``, and as many edits (Discord
  counts them in separate buckets; the ``Route`` says which one a request spends);
* ``route:<key>``: learned from response headers (remaining/reset, 429 retry-after).

Windows are sliding and measured with completion times: a request holds a slot from dispatch until it
completes and for ``window`` seconds after that. Any fixed server window ``[t, t + window)`` can then only
contain requests that were in flight or completed less than ``window`` before the last of them was
dispatched, so the server never sees more than ``limit`` whatever the network latency.

Re-submitting a key that is already pending only swaps the action (latest wins), which is O(1) and does not
wake the dispatcher; a key never has two requests in flight.

Layout: this module owns the jobs (pending, running) and the budgets they hold, from dispatch until the
response; ``bot.streaming.dispatch`` decides when each queued job starts (lanes per channel, priority,
fairness); ``bot.streaming.budgets`` is the bookkeeping of the budgets themselves; ``bot.streaming.trace``
sees every request discord.py makes and reaches the budgets through the ``TraceHost`` methods below.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from bot.streaming import routes
from bot.streaming.budgets import GlobalBudget, RouteTable
from bot.streaming.dispatch import Dispatcher
from bot.streaming.jobs import Claim, Job, Lane, PacerStats, TracedRequest
from bot.streaming.routes import Route
from bot.streaming.trace import Trace

__all__ = ["Pacer"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL_WINDOW = 5.0  # seconds of a channel's message budgets (5 creates and 5 edits)
# Interaction tokens live 15 minutes: far more than a bot answers in that time.
WEBHOOK_CHANNELS_KEPT = 10_000


class Pacer:
    """Schedules every Discord REST job of the bot; see the module docstring."""

    def __init__(
        self,
        *,
        global_per_second: int = 50,
        global_headroom: int = 5,
        channel_limit: int = 5,
        channel_window: float = CHANNEL_WINDOW,
        global_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        hold_at_start: bool = False,
    ) -> None:
        """``hold_at_start``: the bot's previous process may have spent the channels' budgets just before
        this one started, and Discord's windows are fixed, so the first requests could meet its spending:
        nothing spends a channel budget until one channel window has passed since now. (The global window,
        1 s, has passed before the process has even imported its modules.)"""
        if global_per_second - global_headroom < 1 or channel_limit < 1:
            raise ValueError("every budget needs a limit of at least 1")
        self._clock = clock
        self.stats = PacerStats()
        self._global = GlobalBudget(global_per_second - global_headroom, global_per_second, global_window)
        self._routes: RouteTable[Lane] = RouteTable()
        self._dispatch = Dispatcher(
            clock=clock,
            global_budget=self._global,
            routes=self._routes,
            channel_limit=channel_limit,
            channel_window=channel_window,
            stats=self.stats,
            start=self._start,
            held_until=clock() + channel_window if hold_at_start else -math.inf,
        )
        # The channel of each interaction webhook a job declared (its path names none): every request
        # through that token spends the channel's budget, a retry inside discord.py's call too.
        self._webhook_channels: dict[str, int] = {}
        self._pending: dict[Hashable, Job] = {}
        self._running: dict[Hashable, Job] = {}
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = False
        self._current: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
            f"pacer_job_{id(self)}", default=None
        )

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("pacer is closed")
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch.run(), name="pacer")

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
        self._dispatch.clear()

    # ----------------------------------------------------------------- public API

    def submit(
        self, key: Hashable, action: Callable[[], Awaitable[Any]], route: Route, *, priority: bool = False
    ) -> asyncio.Future[Any]:
        """Queue ``action`` (which sends the request ``route`` describes) under ``key``; a pending job with
        the same key is replaced (latest wins).

        The returned future gets the action's result or exception; futures of replaced versions get the
        outcome of the version that finally runs.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.cancel()
            return fut
        self._learn_webhook_channel(route)
        job = self._pending.get(key)
        if job is not None:
            job.action = action
            job.futures.append(fut)
            self.stats.replaced += 1
            was, now = job.route, route
            moved = (was.channel_budget, was.uses_global) != (now.channel_budget, now.uses_global)
            requeue = job.entry is not None and (moved or (priority and not job.priority))
            if requeue:
                self._dispatch.unqueue(job)
            job.route = route
            job.priority = job.priority or priority
            if requeue:
                self._dispatch.enqueue(job)
            return fut
        job = Job(key, action, route, priority, self._clock(), next(self._seq), [fut])
        self._pending[key] = job
        self.stats.max_queue = max(self.stats.max_queue, len(self._pending))
        if key in self._running:
            job.parked = True  # never two requests in flight for one key
        else:
            self._dispatch.enqueue(job)
        return fut

    def cancel(self, key: Hashable) -> None:
        """Drop the pending (not yet started) job for ``key``; its futures are cancelled."""
        job = self._pending.pop(key, None)
        if job is None:
            return
        if job.entry is not None:
            self._dispatch.unqueue(job)
        for fut in job.futures:
            fut.cancel()

    async def run(self, action: Callable[[], Awaitable[T]], route: Route) -> T:
        """Run a one-off job and return its result. One-offs take turns with streaming edits (first text
        and final edits go first), so many of them can't freeze the streams."""
        key = object()
        fut = self.submit(key, action, route)
        try:
            result: T = await fut
        except asyncio.CancelledError:
            self.cancel(key)
            raise
        return result

    def trace_config(self) -> aiohttp.TraceConfig:
        """Trace hooks for the bot's aiohttp session (``commands.Bot(http_trace=...)``)."""
        return Trace(self, self._clock).config()

    # ----------------------------------------------------------------- jobs

    def _start(self, job: Job, now: float) -> None:
        """Take the budgets a job spends and run it (the dispatcher found room for it)."""
        del self._pending[job.key]
        self._dispatch.unqueue(job)
        self._running[job.key] = job
        lane = job.lane
        assert lane is not None
        if lane.window is not None:
            lane.window.acquire()
            lane.last_dispatch = now
        if job.route.uses_global:
            self._global.window.acquire()
        self._routes.budget(job.route.key).reserve(now)
        self.stats.dispatched += 1
        task = asyncio.get_running_loop().create_task(self._run_job(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: Job) -> None:
        self._current.set(job)  # lets the trace recognise this job's request (the task has its own context)
        try:
            result = await job.action()
        except Exception as exc:
            self._finish(job)
            log.warning("paced request failed (route %s): %s", job.route.key, routes.redact(f"{exc!r}"))
            log.debug("paced request traceback:\n%s", routes.redact("".join(traceback.format_exception(exc))))
            for fut in job.futures:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # already logged: don't let asyncio warn about unretrieved futures
            return
        except BaseException:  # cancelled (loop shutdown): free the budgets, then propagate
            self._finish(job)
            for fut in job.futures:
                fut.cancel()
            raise
        self._finish(job)
        for fut in job.futures:
            if not fut.done():
                fut.set_result(result)

    def _finish(self, job: Job) -> None:
        """The job's action ended: free what its request did not already free, start its successor."""
        now = self._clock()
        del self._running[job.key]
        self._free(job, Claim.ALL, now)
        successor = self._pending.get(job.key)
        if successor is not None and successor.parked:
            successor.parked = False
            self._dispatch.enqueue(successor)
        self._dispatch.completed(job.lane, now)  # a global slot or route may have freed

    def _free(self, job: Job, which: Claim, now: float) -> None:
        """Free the slots a job holds (once each): at its request's response, else when its action ends."""
        which &= ~job.released
        job.released |= which
        lane = job.lane
        assert lane is not None
        if Claim.CHANNEL in which and lane.window is not None:
            lane.window.release(now)
        if Claim.GLOBAL in which and job.route.uses_global:
            self._global.window.release(now)
        if Claim.ROUTE in which:
            self._release_route(job.route, now)

    def _release_route(self, route: Route, now: float) -> None:
        state = self._routes.budget(route.key)
        state.release(now)
        self._dispatch.notify(state)

    def _learn_webhook_channel(self, route: Route) -> None:
        scope = routes.webhook_scope(route.key)
        if scope is None or route.channel_id is None:
            return
        channels = self._webhook_channels
        channels.pop(scope, None)  # most recent last
        channels[scope] = route.channel_id
        if len(channels) > WEBHOOK_CHANNELS_KEPT:
            del channels[next(iter(channels))]

    def _in_channel(self, route: Route) -> Route:
        """The route with the channel its webhook writes in, once a job has said which."""
        if route.channel_id is not None:
            return route
        scope = routes.webhook_scope(route.key)
        channel_id = None if scope is None else self._webhook_channels.get(scope)
        return route if channel_id is None else route.spending(channel_id)

    # ----------------------------------------------------------------- TraceHost (bot.streaming.trace)

    def claim(self, route: Route) -> TracedRequest:
        route = self._in_channel(route)
        job = self._current.get()
        claim = Claim.NONE if job is None else job.claim(route)
        spends_channel = route.channel_id is not None and Claim.CHANNEL not in claim
        return TracedRequest(
            route,
            job,
            claim,
            self._global if route.uses_global and Claim.GLOBAL not in claim else None,
            self._dispatch.lane(route.channel_budget) if spends_channel else None,
        )

    def hold(self, request: TracedRequest, now: float) -> None:
        if request.global_budget is not None:
            request.global_budget.window.acquire()
            request.held.append(request.global_budget.window)
        if request.lane is not None and request.lane.window is not None:
            request.lane.window.acquire()
            request.held.append(request.lane.window)
        request.route_reserved = Claim.ROUTE not in request.claim
        if request.route_reserved:
            self._routes.budget(request.route.key).reserve(now)

    def learn(self, request: TracedRequest, headers: CIMultiDictProxy[str], now: float) -> None:
        self._routes.learn(request.route.key, headers, now)

    def block(self, until: float, route: Route | None) -> None:
        if route is None:
            self._global.block(until)
            return
        self._routes.budget(route.key).block(until)
        if route.channel_budget is not None:
            # The exhausted bucket may be the channel's (shared with other messages there): every request
            # spending it waits, not only this route's.
            lane = self._dispatch.lane(route.channel_budget)
            assert lane.window is not None
            lane.window.block(until)
            self._dispatch.completed(lane, self._clock())

    def end(self, request: TracedRequest, now: float) -> None:
        job = request.job
        if job is not None and request.claim:
            # The server has answered: free the job's slots now, not when its action returns (discord.py may
            # still sleep out an exhausted bucket inside the call).
            self._free(job, request.claim, now)
            self._dispatch.completed(job.lane, now)
        for window in request.held:
            window.release(now)
        request.held.clear()
        if request.route_reserved:
            request.route_reserved = False
            self._release_route(request.route, now)
        self._dispatch.completed(request.lane, now)
        self._dispatch.notify(self._routes.budget(request.route.key))
