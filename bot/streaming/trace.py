"""The pacer's view of every REST request discord.py makes: aiohttp trace hooks.

For each request to the Discord API the trace derives its ``Route`` (the same ``Route.of`` the jobs declare
theirs with), lets it claim the budgets its job reserved at dispatch, makes a request no job scheduled wait
for room in the hard limits it spends, and at the response folds the rate-limit headers (and 429s) into
the pacer's budgets and frees the request's slots. The budgets themselves stay the pacer's, behind
``TraceHost``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from multidict import CIMultiDictProxy

from bot.streaming.budgets import INF, TIMER_SLACK, retry_after
from bot.streaming.jobs import PacerStats, TracedRequest
from bot.streaming.routes import Route, api_path

__all__ = ["Trace", "TraceHost"]

log = logging.getLogger(__name__)

# Poll period for unpaced requests waiting only on in-flight requests to complete (rare path).
_UNPACED_POLL = 0.02


class TraceHost(Protocol):
    """What the pacer offers the trace."""

    stats: PacerStats

    def claim(self, route: Route) -> TracedRequest:
        """A request is starting: the budgets it takes over from the job that sent it (if any)."""
        ...

    def hold(self, request: TracedRequest, now: float) -> None:
        """Take the slots the request spends itself (it had room: ``request.free_at(now) <= now``)."""
        ...

    def learn(self, request: TracedRequest, headers: CIMultiDictProxy[str], now: float) -> None:
        """Fold a response's rate-limit headers into the request's route budget."""
        ...

    def block(self, until: float, route: Route | None) -> None:
        """Nothing more on ``route`` (None: anything the global limit counts) until ``until``."""
        ...

    def end(self, request: TracedRequest, now: float) -> None:
        """The request got its response (or failed): free everything it holds."""
        ...


class Trace:
    def __init__(self, host: TraceHost, clock: Callable[[], float]) -> None:
        self._host = host
        self._clock = clock

    def config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_end.append(self._on_request_end)
        trace.on_request_exception.append(self._on_request_exception)
        return trace

    async def _on_request_start(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.request = None  # set once the request holds its slots
        path = api_path(params.url.path)
        if path is None:
            return  # CDN, gateway: not a REST API call
        request = self._host.claim(Route.of(params.method, path))
        if request.job is None:
            self._host.stats.unpaced += 1
        now = await self._wait_for_room(request)
        self._host.hold(request, now)
        ctx.request = request

    async def _wait_for_room(self, request: TracedRequest) -> float:
        """Wait until the budgets the request spends itself have room; returns that time."""
        waited = False
        while True:
            now = self._clock()
            at = request.free_at(now)
            if at <= now:
                return now
            if not waited:
                waited = True
                self._host.stats.throttled += 1
            await asyncio.sleep(at - now + TIMER_SLACK if at < INF else _UNPACED_POLL)

    async def _on_request_end(
        self, session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        request: TracedRequest | None = ctx.request
        if request is None:
            return
        now = self._clock()
        headers = params.response.headers
        self._host.learn(request, headers, now)
        if params.response.status == 429:
            self._host.stats.rate_limited += 1
            wait = retry_after(headers)
            scope = headers.get("X-RateLimit-Scope", "")
            is_global = headers.get("X-RateLimit-Global", "").lower() == "true" or scope == "global"
            log.warning(
                "429 on %s (scope=%s, global=%s): blocking for %.3fs",
                request.route.key,
                scope or "?",
                is_global,
                wait,
            )
            self._host.block(now + wait, None if is_global else request.route)
        self._host.end(request, now)

    async def _on_request_exception(
        self,
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        request: TracedRequest | None = ctx.request
        if request is not None:
            self._host.end(request, self._clock())
