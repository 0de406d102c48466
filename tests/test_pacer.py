"""Pacer tests with tiny windows; assertions use recorded times, never durations. Streams run on a fake
clock that the pacer shares, so how much they send in a given time does not depend on the machine's load."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.streaming.pacer import Pacer
from bot.streaming.routes import Route, major_parameters

clock = time.monotonic


async def wait_until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the conditions are plain pacer state, not events
            await asyncio.sleep(0.002)


class FakeClock:
    """Seconds for the pacer and the fake Discord actions, moved only by ``run``: never ahead of real time
    (the dispatcher's timers are the event loop's), and never more than ``most`` steps while the loop was
    busy elsewhere. What the pacer decides, and when the recorder saw it, then depends on this time alone,
    however late a loaded machine runs the loop: a busy machine only makes the test take longer."""

    def __init__(self, step: float = 0.001, most: int = 5) -> None:
        self.step = step
        self.most = most
        self._ticks = 0
        self._ticked = asyncio.Event()

    def __call__(self) -> float:
        return self._ticks * self.step

    async def sleep(self, seconds: float) -> None:
        until = self() + seconds
        while self() < until:
            await self._ticked.wait()

    def _tick(self, ticks: int = 1) -> None:
        self._ticks += ticks
        self._ticked.set()
        self._ticked = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.step)
            now = loop.time()
            self._tick(min(max(int((now - last) / self.step), 1), self.most))
            last = now

    def release(self) -> None:
        """Jump far ahead: whatever still sleeps on this clock (a failed test's jobs) ends."""
        self._tick(10**12)


@pytest.fixture
async def fake_clock() -> AsyncIterator[FakeClock]:
    fake = FakeClock()
    ticking = asyncio.create_task(fake.run())
    yield fake
    fake.release()
    ticking.cancel()


@dataclass
class Call:
    key: Hashable
    payload: Any
    start: float
    end: float = float("inf")


@dataclass
class Recorder:
    """Fake Discord actions: record when each started/finished, optionally with a slow 'network'."""

    calls: list[Call] = field(default_factory=list)
    running: Counter[Hashable] = field(default_factory=Counter)
    max_running_per_key: int = 0
    latency: Callable[[], float] = lambda: 0.0
    now: Callable[[], float] = clock
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def action(self, key: Hashable, payload: Any) -> Callable[[], Awaitable[Any]]:
        async def send() -> Any:
            call = Call(key, payload, self.now())
            self.calls.append(call)
            self.running[key] += 1
            self.max_running_per_key = max(self.max_running_per_key, self.running[key])
            try:
                delay = self.latency()
                if delay:
                    await self.sleep(delay)
                return payload
            finally:
                self.running[key] -= 1
                call.end = self.now()

        return send

    def payloads(self, key: Hashable) -> list[Any]:
        return [c.payload for c in self.calls if c.key == key]


def max_in_any_window(intervals: list[tuple[float, float]], window: float) -> int:
    """Most requests a fixed server window [t, t + window) could have received, each arriving anywhere
    between its dispatch and its completion."""
    best = 0
    for _, t in intervals:
        best = max(best, sum(1 for start, end in intervals if end >= t and start < t + window))
    return best


def jain(counts: list[int]) -> float:
    return sum(counts) ** 2 / (len(counts) * sum(c * c for c in counts))


@pytest.fixture
async def make_pacer() -> AsyncIterator[Callable[..., Awaitable[Pacer]]]:
    pacers: list[Pacer] = []

    async def make(**kwargs: Any) -> Pacer:
        pacer = Pacer(**kwargs)
        await pacer.start()
        pacers.append(pacer)
        return pacer

    yield make
    for pacer in pacers:
        await pacer.close()


async def stream(
    pacer: Pacer,
    rec: Recorder,
    key: Hashable,
    *,
    route: Route,
    until: float,
    period: float = 0.005,
) -> int:
    """Re-submit a growing 'message' every token like a streaming reply, then a final priority edit (in the
    recorder's time)."""
    n = 0
    while rec.now() < until:
        n += 1
        pacer.submit(key, rec.action(key, n), route)
        await rec.sleep(period)
    n += 1
    # A guard against a hang only: on a busy machine the fake clock runs slower than real time.
    await asyncio.wait_for(pacer.submit(key, rec.action(key, n), route, priority=True), 60)
    return n


# --------------------------------------------------------------------------- latest wins / per key


async def test_latest_wins_while_in_flight(make_pacer: Callable[..., Awaitable[Pacer]]) -> None:
    pacer = await make_pacer(channel_window=0.2)
    rec = Recorder()
    gate = asyncio.Event()

    async def first() -> str:
        await rec.action("k", 0)()
        await gate.wait()
        return "first"

    f0 = pacer.submit("k", first, Route.edit_message(1, 1))
    await wait_until(lambda: len(rec.calls) == 1)
    futures = [pacer.submit("k", rec.action("k", i), Route.edit_message(1, 1)) for i in range(1, 10)]
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(f0, *futures), 3)
    assert rec.payloads("k") == [0, 9]
    assert results == ["first"] + [9] * 9
    assert pacer.stats.dispatched == 2
    assert pacer.stats.replaced == 8


async def test_never_two_in_flight_per_key_and_last_version_delivered(
    fake_clock: FakeClock, make_pacer: Callable[..., Awaitable[Pacer]]
) -> None:
    pacer = await make_pacer(channel_limit=5, channel_window=0.1, clock=fake_clock)
    rec = Recorder(latency=lambda: random.uniform(0.0, 0.03), now=fake_clock, sleep=fake_clock.sleep)
    until = fake_clock() + 0.25
    finals = await asyncio.gather(
        *(stream(pacer, rec, f"s{i}", route=Route(i % 2, f"route-{i}", True), until=until) for i in range(4))
    )
    assert rec.max_running_per_key == 1
    for i, final in enumerate(finals):
        sent = rec.payloads(f"s{i}")
        assert sent[-1] == final
        assert sent == sorted(sent)  # versions only move forward
    assert pacer.stats.replaced > 0


async def test_cancel_drops_pending_job(make_pacer: Callable[..., Awaitable[Pacer]]) -> None:
    pacer = await make_pacer(channel_limit=1, channel_window=0.05)
    rec = Recorder()
    await pacer.submit("a", rec.action("a", 1), Route(1, "r", True))
    fut = pacer.submit("b", rec.action("b", 1), Route(1, "r", True))
    pacer.cancel("b")
    with pytest.raises(asyncio.CancelledError):
        await fut
    pacer.cancel("unknown")  # no-op
    # "c" queues behind where "b" was, in the same channel: once "c" has run, a kept "b" would have too.
    await asyncio.wait_for(pacer.submit("c", rec.action("c", 1), Route(1, "r", True)), 2)
    assert rec.payloads("b") == []


# --------------------------------------------------------------------------- budgets


async def test_channel_window_never_exceeded_with_slow_network(
    fake_clock: FakeClock, make_pacer: Callable[..., Awaitable[Pacer]]
) -> None:
    window = 0.2
    pacer = await make_pacer(channel_limit=5, channel_window=window, clock=fake_clock)
    rec = Recorder(
        latency=lambda: random.choice([0.0, 0.01, 0.05, 0.12]), now=fake_clock, sleep=fake_clock.sleep
    )
    until = fake_clock() + 0.7
    await asyncio.gather(
        *(stream(pacer, rec, ("s", i), route=Route(7, f"route-{i}", True), until=until) for i in range(6)),
        *(stream(pacer, rec, ("t", i), route=Route(8, f"route-t{i}", True), until=until) for i in range(2)),
    )
    for channel_keys in ([("s", i) for i in range(6)], [("t", i) for i in range(2)]):
        intervals = [(c.start, c.end) for c in rec.calls if c.key in channel_keys]
        assert max_in_any_window(intervals, window) <= 5
    assert len([c for c in rec.calls if c.key[0] == "s"]) >= 10  # and it did keep sending


async def test_global_window_never_exceeded(
    fake_clock: FakeClock, make_pacer: Callable[..., Awaitable[Pacer]]
) -> None:
    window = 0.25
    pacer = await make_pacer(
        global_per_second=12, global_headroom=2, global_window=window, channel_window=0.1, clock=fake_clock
    )
    rec = Recorder(latency=lambda: random.choice([0.0, 0.02, 0.08]), now=fake_clock, sleep=fake_clock.sleep)
    until = fake_clock() + 0.6
    await asyncio.gather(
        *(stream(pacer, rec, i, route=Route.edit_message(i, 1), until=until) for i in range(12)),
        # Interaction webhook traffic does not count against the global limit.
        stream(pacer, rec, "webhook", route=Route(99, "webhook", False), until=until),
    )
    paced = [(c.start, c.end) for c in rec.calls if c.key != "webhook"]
    assert max_in_any_window(paced, window) <= 10
    assert len(paced) >= 20
    assert len(rec.payloads("webhook")) > max_in_any_window(paced, window) // 2  # not starved by the global


async def test_lone_stream_is_spaced(
    fake_clock: FakeClock, make_pacer: Callable[..., Awaitable[Pacer]]
) -> None:
    pacer = await make_pacer(channel_limit=5, channel_window=0.5, clock=fake_clock)  # 1 edit per 0.1 s
    rec = Recorder(now=fake_clock, sleep=fake_clock.sleep)
    first = pacer.submit("s", rec.action("s", 0), Route(1, "r", True), priority=True)
    await first
    until = fake_clock() + 0.4
    n = 0
    while fake_clock() < until:
        n += 1
        pacer.submit("s", rec.action("s", n), Route(1, "r", True))
        await fake_clock.sleep(0.002)
    starts = [c.start for c in rec.calls]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3
    assert min(gaps) >= 0.1 - 0.01  # a recorded start lags its dispatch by about a loop iteration


async def test_priority_skips_spacing_but_not_the_window(make_pacer: Callable[..., Awaitable[Pacer]]) -> None:
    pacer = await make_pacer(channel_limit=3, channel_window=30)  # spacing 10 s; 3 per 30 s
    rec = Recorder()
    await pacer.submit("a", rec.action("a", 1), Route(1, "ra", True))
    slow = pacer.submit("b", rec.action("b", 1), Route(1, "rb", True))
    await asyncio.wait_for(pacer.submit("c", rec.action("c", 1), Route(1, "rc", True), priority=True), 2)
    assert not slow.done()  # still held by the spacing rule
    await asyncio.wait_for(pacer.submit("d", rec.action("d", 1), Route(1, "rd", True), priority=True), 2)
    over = pacer.submit("e", rec.action("e", 1), Route(1, "re", True), priority=True)
    # A job in another channel, submitted after "e", has run: the dispatcher has had its chance at "e".
    await asyncio.wait_for(pacer.run(lambda: asyncio.sleep(0), Route(2, "probe", True)), 2)
    assert not over.done()  # 3 per window already used: priority does not skip the window
    assert [c.key for c in rec.calls] == ["a", "c", "d"]


async def test_creates_and_edits_spend_separate_channel_budgets(
    make_pacer: Callable[..., Awaitable[Pacer]],
) -> None:
    pacer = await make_pacer(channel_limit=1, channel_window=30)  # 1 create and 1 edit per 30 s
    rec = Recorder()
    await asyncio.wait_for(pacer.submit("e", rec.action("e", 1), Route.edit_message(1, 5), priority=True), 2)
    # The edit budget is spent, the create budget is not: a new page goes at once.
    await asyncio.wait_for(pacer.submit("c", rec.action("c", 1), Route.create_message(1), priority=True), 2)
    edit = pacer.submit("e2", rec.action("e2", 1), Route.edit_message(1, 5), priority=True)
    create = pacer.submit("c2", rec.action("c2", 1), Route.create_message(1), priority=True)
    # A job in another channel, submitted after them, has run: the dispatcher has had its chance at both.
    await asyncio.wait_for(pacer.run(lambda: asyncio.sleep(0), Route.create_message(2)), 2)
    assert not edit.done() and not create.done()  # each budget holds its own kind back
    assert [c.key for c in rec.calls] == ["e", "c"]


@pytest.mark.parametrize(
    ("budgets", "channels"),
    [
        pytest.param({"channel_limit": 1, "channel_window": 0.05}, [1, 1, 1, 1], id="in_a_channel"),
        pytest.param(
            {"global_per_second": 2, "global_headroom": 1, "global_window": 0.05},
            [1, 2, 3, 4],
            id="across_channels",
        ),
    ],
)
async def test_priority_jumps_the_queue(
    make_pacer: Callable[..., Awaitable[Pacer]], budgets: dict[str, Any], channels: list[int]
) -> None:
    # "a" takes the only slot of the budget under test; "p" is submitted last but must run next.
    pacer = await make_pacer(**budgets)
    rec = Recorder()
    await pacer.submit("a", rec.action("a", 1), Route(channels[0], "ra", True))
    futures = [
        pacer.submit(k, rec.action(k, 1), Route(ch, f"r{k}", True), priority=k == "p")
        for k, ch in zip("bcp", channels[1:], strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*futures), 3)
    assert [c.key for c in rec.calls] == ["a", "p", "b", "c"]


async def test_fair_across_50_channels(
    fake_clock: FakeClock, make_pacer: Callable[..., Awaitable[Pacer]]
) -> None:
    # The global budget (40 per 0.2 s) is the bottleneck: 50 channels could use 250 per 0.2 s.
    pacer = await make_pacer(
        global_per_second=42, global_headroom=2, global_window=0.2, channel_window=0.2, clock=fake_clock
    )
    rec = Recorder(latency=lambda: random.uniform(0.0, 0.01), now=fake_clock, sleep=fake_clock.sleep)
    until = fake_clock() + 0.8
    await asyncio.gather(
        *(stream(pacer, rec, i, route=Route.edit_message(i, 1), until=until, period=0.01) for i in range(50))
    )
    counts = Counter(c.key for c in rec.calls)
    assert len(counts) == 50
    assert jain([counts[i] for i in range(50)]) >= 0.95
    assert max_in_any_window([(c.start, c.end) for c in rec.calls], 0.2) <= 40


async def test_a_burst_of_one_offs_takes_turns_with_streaming_edits(
    make_pacer: Callable[..., Awaitable[Pacer]],
) -> None:
    # The global budget (5 per 0.1 s) is the bottleneck: 40 one-offs alone would hold it for 0.8 s.
    pacer = await make_pacer(global_per_second=6, global_headroom=1, global_window=0.1, channel_window=0.1)
    rec = Recorder()
    fetches = [
        asyncio.ensure_future(pacer.run(rec.action(("fetch", i), i), Route.fetch_message(9, 100 + i)))
        for i in range(40)
    ]
    await asyncio.sleep(0)  # one loop turn: every one-off is submitted before the edits
    edits = [pacer.submit(ch, rec.action(ch, 1), Route.edit_message(ch, 1)) for ch in range(1, 6)]
    urgent = pacer.submit("final", rec.action("final", 1), Route.edit_message(6, 1), priority=True)
    await asyncio.wait_for(asyncio.gather(*fetches, *edits, urgent), 5)
    order = [c.key for c in rec.calls]
    assert order[0] == "final"  # final edits go first
    # Every channel's edit went out within the first round, not after the whole burst.
    assert max(order.index(ch) for ch in range(1, 6)) < 12, order


async def test_many_streams_resolve_with_their_final_version(
    make_pacer: Callable[..., Awaitable[Pacer]],
) -> None:
    pacer = await make_pacer(global_per_second=100_000, global_headroom=0, channel_window=0.05)
    rec = Recorder()
    futures: dict[int, list[asyncio.Future[Any]]] = {}
    for version in range(30):
        for key in range(1000):
            futures.setdefault(key, []).append(
                pacer.submit(key, rec.action(key, version), Route(key % 200, f"r{key}", True))
            )
        await asyncio.sleep(0)
    for key, futs in futures.items():
        results = await asyncio.wait_for(asyncio.gather(*futs), 5)
        assert results[-1] == 29
        assert rec.payloads(key)[-1] == 29
    assert pacer.stats.dispatched < 30 * 1000 / 2  # most intermediate versions were never sent
    assert pacer.stats.max_queue >= 200


# --------------------------------------------------------------------------- failures and lifecycle


async def test_exception_reaches_the_future_and_pacer_keeps_running(
    make_pacer: Callable[..., Awaitable[Pacer]], caplog: pytest.LogCaptureFixture
) -> None:
    pacer = await make_pacer()
    secret = "/webhooks/1/SECRET-TOKEN/messages/2"

    async def boom() -> None:
        raise ValueError(f"bad request to {secret}")

    with caplog.at_level(logging.DEBUG, logger="bot.streaming"):
        with pytest.raises(ValueError, match="bad request"):
            await pacer.submit("x", boom, Route(1, "r", True))
    assert "SECRET-TOKEN" not in caplog.text
    assert "bad request" in caplog.text
    assert await pacer.run(lambda: asyncio.sleep(0, "ok"), Route(1, "r2", True)) == "ok"


async def test_close_waits_for_in_flight_and_cancels_pending() -> None:
    pacer = Pacer(channel_limit=1, channel_window=30)
    await pacer.start()
    gate = asyncio.Event()
    finished = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        finished.set()
        return "done"

    running = pacer.submit("a", slow, Route(1, "ra", True))
    pending = pacer.submit("b", slow, Route(1, "rb", True))
    await wait_until(lambda: pacer.stats.dispatched == 1)
    closing = asyncio.create_task(pacer.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done() and not pending.done()
    gate.set()
    await asyncio.wait_for(closing, 2)
    assert finished.is_set() and running.result() == "done"
    assert pending.cancelled()
    late = pacer.submit("c", slow, Route(1, "rc", True))
    assert late.cancelled()


# --------------------------------------------------------------------------- trace hooks vs a real server


@dataclass
class Hit:
    at: float
    method: str
    path: str
    status: int


class RateLimitedServer:
    """Tiny Discord-like server: fixed-window buckets per route key, plus scripted one-shot responses."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.windows: dict[str, tuple[float, int]] = {}
        self.scripted: dict[str, tuple[int, dict[str, str]]] = {}
        self.hits: list[Hit] = []
        self.base = ""
        self.reports = True  # False: no X-RateLimit-* headers on success, as behind a REST proxy

    async def handle(self, request: web.Request) -> web.Response:
        now = clock()
        path = request.path.removeprefix("/api/v10")
        if path in self.scripted:
            status, headers = self.scripted.pop(path)
            self.hits.append(Hit(now, request.method, path, status))
            return web.json_response({"retry_after": 0}, status=status, headers=headers)
        # Like Discord, all message creates/edits of a channel share one bucket.
        key = Route.of(request.method, path).key
        bucket = (
            "messages" if "/messages" in path else hashlib.sha256(key.partition(":")[0].encode()).hexdigest()
        )
        key = f"{bucket}:{major_parameters(key)}"
        start, count = self.windows.get(key, (-1e9, 0))
        if now >= start + self.window:
            start, count = now, 0
        reset_after = start + self.window - now
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Reset-After": f"{reset_after:.6f}",
            "X-RateLimit-Reset": f"{start + self.window:.6f}",
            "X-RateLimit-Bucket": bucket,
        }
        if count >= self.limit:
            self.hits.append(Hit(now, request.method, path, 429))
            headers |= {
                "X-RateLimit-Remaining": "0",
                "Retry-After": f"{reset_after:.6f}",
                "X-RateLimit-Scope": "user",
            }
            return web.json_response(
                {"retry_after": reset_after, "global": False}, status=429, headers=headers
            )
        self.windows[key] = (start, count + 1)
        self.hits.append(Hit(now, request.method, path, 200))
        headers["X-RateLimit-Remaining"] = str(self.limit - count - 1)
        return web.json_response({"id": "1"}, headers=headers if self.reports else {})


@pytest.fixture
async def server() -> AsyncIterator[RateLimitedServer]:
    fake = RateLimitedServer(limit=2, window=0.25)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.base = f"http://{host}:{port}/api/v10"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def traced() -> AsyncIterator[Callable[[Pacer], aiohttp.ClientSession]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(pacer: Pacer) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(trace_configs=[pacer.trace_config()])
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


def http_action(
    session: aiohttp.ClientSession, method: str, url: str, started: list[float] | None = None
) -> Callable[[], Awaitable[int]]:
    async def send() -> int:
        if started is not None:
            started.append(clock())
        async with session.request(method, url) as response:
            await response.read()
            return response.status

    return send


async def test_learns_route_buckets_from_headers_and_never_hits_429(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    # Channel budget out of the way: only the learned bucket (2 per 0.25 s, shared by the channel's
    # creates and edits, as the X-RateLimit-Bucket header says) limits.
    pacer = await make_pacer(channel_limit=1000, channel_window=0.01)
    session = traced(pacer)
    create = "/channels/5/messages"

    def edit(message: int) -> Callable[[], Awaitable[int]]:
        return http_action(session, "PATCH", f"{server.base}{create}/{message}")

    def submit(key: Hashable, method: str, path: str, action: Callable[[], Awaitable[int]]) -> Any:
        return pacer.submit(key, action, Route.of(method, path))

    # Learn both route keys first: a never-seen route can only probe one request at a time.
    assert await submit("e1", "PATCH", f"{create}/1", edit(1)) == 200
    assert await submit("c1", "POST", create, http_action(session, "POST", server.base + create)) == 200
    statuses = await asyncio.wait_for(
        asyncio.gather(
            submit("e2", "PATCH", f"{create}/2", edit(2)),
            submit("e3", "PATCH", f"{create}/3", edit(3)),
            submit("c2", "POST", create, http_action(session, "POST", server.base + create)),
            submit("c3", "POST", create, http_action(session, "POST", server.base + create)),
        ),
        5,
    )
    assert statuses == [200] * 4
    assert [h.status for h in server.hits] == [200] * 6
    assert pacer.stats.rate_limited == 0
    assert pacer.stats.unpaced == 0


@pytest.mark.parametrize("reports", [True, False], ids=["headers", "behind a proxy"])
async def test_reaction_add_and_remove_share_one_bucket_before_any_header(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
    reports: bool,
) -> None:
    # Discord: 1 reaction add or remove per 0.25 s per channel, one bucket it reports only once answered
    # (and a REST proxy never). The stop button adds and removes under one key, back to back.
    server.limit, server.window, server.reports = 1, 0.25, reports
    pacer = await make_pacer()
    session = traced(pacer)
    reaction = f"{server.base}/channels/3/messages/9/reactions/%F0%9F%9B%91"
    add = pacer.submit(
        "button", http_action(session, "PUT", f"{reaction}/@me"), Route.reaction_add(3, 9, "🛑")
    )
    await wait_until(lambda: pacer.stats.dispatched == 1)
    remove = pacer.submit(
        "button", http_action(session, "DELETE", f"{reaction}/@me"), Route.reaction_remove(3, 9, "🛑")
    )
    stray = pacer.run(http_action(session, "DELETE", f"{reaction}/42"), Route.reaction_remove(3, 9, "🛑", 42))
    assert await asyncio.wait_for(asyncio.gather(add, remove, stray), 3) == [200] * 3
    assert [h.status for h in server.hits] == [200] * 3
    assert pacer.stats.rate_limited == 0 and pacer.stats.unpaced == 0


async def test_remaining_zero_blocks_route_until_reset(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    pacer = await make_pacer()
    session = traced(pacer)
    path = "/channels/9/messages"
    server.scripted[path] = (
        200,
        {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.3"},
    )
    route = Route.create_message(9)
    assert await pacer.run(http_action(session, "POST", server.base + path), route) == 200
    started: list[float] = []
    await pacer.run(http_action(session, "POST", server.base + path, started), route)
    assert started[0] >= server.hits[0].at + 0.3


async def test_429_blocks_the_route_and_is_redacted(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = await make_pacer()
    session = traced(pacer)
    token = "SECRET_interaction_token"
    path = f"/webhooks/77/{token}/messages/@original"
    server.scripted[path] = (429, {"Retry-After": "0.4", "X-RateLimit-Scope": "user"})
    with caplog.at_level(logging.DEBUG, logger="bot.streaming"):
        # An unpaced request (discord.py's own) gets the 429; the pacer learns from it through the trace.
        async with session.patch(server.base + path) as response:
            assert response.status == 429
    assert pacer.stats.rate_limited == 1 and pacer.stats.unpaced == 1
    blocked_started: list[float] = []
    blocked = pacer.submit(
        "blocked",
        http_action(session, "PATCH", server.base + path, blocked_started),
        Route.of("PATCH", path),
    )
    other = pacer.submit(
        "other",
        http_action(session, "PATCH", server.base + "/channels/1/messages/2"),
        Route.edit_message(1, 2),
    )
    assert await asyncio.wait_for(other, 2) == 200
    assert not blocked.done()  # a different route is not held back
    assert await asyncio.wait_for(blocked, 2) == 200
    assert blocked_started[0] >= server.hits[0].at + 0.4
    assert token not in caplog.text
    assert "429" in caplog.text


async def hit_global_429(session: aiohttp.ClientSession, server: RateLimitedServer) -> None:
    """A request the server refuses with a global 429: the global budget is spent for 0.4 s."""
    server.scripted["/gateway/bot"] = (
        429,
        {"Retry-After": "0.4", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
    )
    async with session.get(server.base + "/gateway/bot") as response:
        assert response.status == 429


async def test_global_429_blocks_global_jobs_only(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    pacer = await make_pacer()
    session = traced(pacer)
    await hit_global_429(session, server)
    started: list[float] = []
    global_job = pacer.submit(
        "g",
        http_action(session, "PATCH", server.base + "/channels/3/messages/4", started),
        Route.edit_message(3, 4),
    )
    webhook_path = "/webhooks/8/tok/messages/@original"
    assert (
        await asyncio.wait_for(
            pacer.run(
                http_action(session, "PATCH", server.base + webhook_path),
                Route.webhook_edit(8, "tok", "@original", channel_id=4),
            ),
            2,
        )
        == 200
    )
    assert not global_job.done()
    assert await asyncio.wait_for(global_job, 2) == 200
    assert started[0] >= server.hits[0].at + 0.4


async def test_unpaced_requests_count_in_the_global_window(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    window = 0.3
    pacer = await make_pacer(global_per_second=4, global_headroom=1, global_window=window)
    session = traced(pacer)
    server.limit = 100

    async def unpaced(i: int) -> int:
        async with session.get(f"{server.base}/users/{i}") as response:
            return response.status

    # Six at once: the trace holds the last two back so the hard limit (4 per window) holds.
    assert await asyncio.wait_for(asyncio.gather(*(unpaced(i) for i in range(6))), 3) == [200] * 6
    assert max_in_any_window([(h.at, h.at) for h in server.hits], window) <= 4
    assert pacer.stats.unpaced == 6
    # The paced budget (3 per window) is already used by the unpaced requests.
    started: list[float] = []
    await asyncio.wait_for(
        pacer.run(
            http_action(session, "PATCH", server.base + "/channels/1/messages/1", started),
            Route.edit_message(1, 1),
        ),
        3,
    )
    hits = sorted(h.at for h in server.hits[:6])
    assert started[0] >= hits[3] + window  # 4 of the 6 slots had to expire
    assert max_in_any_window([(h.at, h.at) for h in server.hits], window) <= 4


async def test_slots_free_when_the_response_arrives_not_when_the_action_returns(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    # discord.py may sleep out an exhausted bucket inside the call after the response; the channel slot
    # must count from the response. A webhook path names no channel: the job's declared route claims it.
    pacer = await make_pacer(channel_limit=1, channel_window=0.2)
    session = traced(pacer)
    path = "/webhooks/1/secret-token/messages/@original"
    route = Route.webhook_edit(1, "secret-token", "@original", channel_id=7)
    finished: list[float] = []
    started: list[float] = []

    async def edit_then_linger() -> None:
        await http_action(session, "PATCH", server.base + path, started)()
        # Linger until the second edit has started, which it can only do if the slot freed at the response.
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: len(started) == 2)
        finished.append(clock())

    first = pacer.submit("a", edit_then_linger, route)
    second = pacer.submit(
        "b",
        http_action(session, "PATCH", server.base + path, started),
        route,
    )
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert len(started) == 2 and started[1] < finished[0]


async def test_while_the_global_budget_is_spent_a_no_channel_job_that_needs_none_still_goes(
    make_pacer: Callable[..., Awaitable[Pacer]],
    server: RateLimitedServer,
    traced: Callable[[Pacer], aiohttp.ClientSession],
) -> None:
    """Reactions (global, no channel budget) queue in one lane with interaction responses (neither): the
    responses behind them go at once, and the reactions once the global budget is back."""
    pacer = await make_pacer()
    session = traced(pacer)
    await hit_global_429(session, server)
    reactions = [
        pacer.submit(
            f"r{i}",
            http_action(session, "PUT", server.base + f"/channels/3/messages/{i}/reactions/x/@me"),
            Route.reaction_add(3, i, "x"),
        )
        for i in range(20)
    ]
    answered = pacer.submit(
        "ack",
        http_action(session, "POST", server.base + "/interactions/9/tok/callback"),
        Route.interaction_callback(9, "tok"),
    )
    assert await asyncio.wait_for(answered, 2) == 200
    assert not any(r.done() for r in reactions)
    assert await asyncio.wait_for(asyncio.gather(*reactions), 5) == [200] * 20
