"""Budget bookkeeping for the pacer: how many requests each Discord rate limit still allows, and when.

* ``SlidingWindow``: ``limit`` requests per ``window`` seconds, counted from completion (see the pacer's
  module docstring for why completion times make this safe whatever the latency);
* ``GlobalBudget``: the bot-wide window, its hard limit and global 429 blocks;
* ``RouteBudget``: one Discord bucket learned from ``X-RateLimit-*`` headers and 429s;
* ``RouteTable``: route key -> ``RouteBudget``, merging keys that report the same bucket.

Nothing here schedules or sleeps: the pacer asks when a budget frees and reserves/releases slots.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from multidict import CIMultiDictProxy

from bot.streaming import routes

__all__ = ["INF", "TIMER_SLACK", "GlobalBudget", "RouteBudget", "RouteTable", "SlidingWindow", "retry_after"]

INF = math.inf
# Small margin so a timer never fires a hair before the slot it waits for is free (avoids a respin).
TIMER_SLACK = 0.0005
# Floor for a learned bucket window (Discord's shortest are 0.25 s), so a bogus Reset-After of 0 can't
# turn the route budget into "reset on every check".
MIN_ROUTE_WINDOW = 0.05
# Idle route budgets are forgotten after this long, so memory tracks active routes only.
ROUTE_IDLE_TTL = 60.0

# Whatever waits on a route budget (the pacer's lanes); the budget only stores and hands them back.
W = TypeVar("W", bound=Hashable)


class SlidingWindow:
    """Sliding window of slots: in-flight requests plus completion times younger than ``window``; or every
    slot taken until ``blocked_until`` (Discord said so with a 429, or another process may have spent it)."""

    __slots__ = ("blocked_until", "done", "inflight", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.inflight = 0
        self.done: deque[float] = deque()  # completion times, non-decreasing
        self.blocked_until = -INF

    def occupied(self, now: float) -> int:
        count = self._count(now)
        return max(count, self.limit) if now < self.blocked_until else count

    def _count(self, now: float) -> int:
        done = self.done
        while done and done[0] + self.window <= now:
            done.popleft()
        return self.inflight + len(done)

    def free_at(self, now: float, limit: int | None = None) -> float:
        """Earliest time fewer than ``limit`` slots are occupied without further completions (INF: only a
        completion can free one)."""
        excess = self._count(now) - (self.limit if limit is None else limit) + 1
        if excess <= 0:
            at = now
        elif excess > len(self.done):
            return INF
        else:
            at = self.done[excess - 1] + self.window
        return max(at, self.blocked_until)

    def block(self, until: float) -> None:
        """No slot frees before ``until``."""
        self.blocked_until = max(self.blocked_until, until)

    def acquire(self) -> None:
        self.inflight += 1

    def release(self, now: float) -> None:
        self.inflight -= 1
        self.done.append(now)


class GlobalBudget:
    """The bot-wide budget: paced jobs stay under ``limit``, requests the pacer did not schedule may use the
    headroom up to ``hard_limit``; a global 429 blocks both."""

    __slots__ = ("blocked_until", "hard_limit", "window")

    def __init__(self, limit: int, hard_limit: int, window: float) -> None:
        self.window = SlidingWindow(limit, window)
        self.hard_limit = hard_limit
        self.blocked_until = -INF

    def has_room(self, now: float) -> bool:
        return now >= self.blocked_until and self.window.occupied(now) < self.window.limit

    def free_at(self, now: float) -> float:
        return max(self.blocked_until, self.window.free_at(now))

    def unpaced_free_at(self, now: float) -> float:
        return max(self.blocked_until, self.window.free_at(now, self.hard_limit))

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)


class RouteBudget(Generic[W]):
    """What we know about one Discord bucket (shared by every route key that reported the same bucket)."""

    __slots__ = (
        "blocked_until",
        "bucket_key",
        "inflight",
        "keys",
        "last_used",
        "limit",
        "remaining",
        "reset_at",
        "waiters",
        "window_id",
        "window_len",
    )

    def __init__(self, key: str) -> None:
        self.keys = {key}
        self.bucket_key: str | None = None
        known = routes.known_bucket(key)
        # None: never saw headers (nor is the bucket known), so allow one request at a time
        self.limit: int | None = None if known is None else known[0]
        self.remaining = 0  # server's remaining minus our reservations since that response
        self.reset_at = -INF
        self.window_id: float | None = None  # X-RateLimit-Reset: identical for all responses of one window
        self.window_len = 0.0 if known is None else known[1]
        self.blocked_until = -INF
        self.inflight = 0
        self.last_used = -INF
        self.waiters: set[W] = set()

    def ready_at(self, now: float) -> float:
        """When one more request may start (<= now: now; INF: after an in-flight one completes)."""
        if now < self.blocked_until:
            return self.blocked_until
        if self.limit is None:
            return now if self.inflight == 0 else INF
        if now >= self.reset_at:
            # Our reset estimate is late by the response latency, so the server window has reset too;
            # requests still in flight may land in the new window, so they count against it.
            self.remaining = self.limit - self.inflight
            self.reset_at = now + max(self.window_len, MIN_ROUTE_WINDOW)
        if self.remaining > 0:
            return now
        # Exhausted right at a reset estimate: only a completion (and its headers) can tell us more.
        return self.reset_at if self.reset_at > now else INF

    def reserve(self, now: float) -> None:
        self.inflight += 1
        self.remaining -= 1
        self.last_used = now

    def release(self, now: float) -> None:
        self.inflight -= 1
        self.last_used = now

    def block(self, until: float) -> None:
        """A 429 on this bucket: nothing more until ``until``."""
        self.blocked_until = max(self.blocked_until, until)
        self.remaining = min(self.remaining, 0)

    def learn(
        self, limit: int | None, remaining: int, reset_after: float, window_id: float | None, now: float
    ) -> None:
        # Other in-flight requests may not be reflected in the server's count yet: assume they are not.
        unseen = max(self.inflight - 1, 0)
        self.window_len = max(self.window_len, reset_after)
        if limit is not None:
            self.limit = limit
        elif self.limit is None:
            self.limit = remaining + 1
        if window_id is not None and self.window_id is not None:
            if window_id < self.window_id:
                return  # a late response from an older window
            if window_id == self.window_id:
                self.remaining = min(self.remaining, remaining - unseen)
                self.reset_at = max(self.reset_at, now + reset_after)
                return
        self.window_id = window_id
        self.remaining = remaining - unseen
        self.reset_at = now + reset_after

    def unreported(self, now: float) -> None:
        """A response without rate-limit headers (a REST proxy strips them): a known bucket's window counts
        from this response, no earlier than the server's window began, whatever the latency."""
        if self.limit is not None:
            self.reset_at = max(self.reset_at, now + max(self.window_len, MIN_ROUTE_WINDOW))

    def absorb(self, other: RouteBudget[W]) -> None:
        """Merge the state of a route key that turned out to share this bucket."""
        if self.limit is None and other.limit is not None:
            self.limit, self.remaining = other.limit, other.remaining
            self.reset_at, self.window_id, self.window_len = other.reset_at, other.window_id, other.window_len
        else:
            self.remaining -= other.inflight
        self.inflight += other.inflight
        self.blocked_until = max(self.blocked_until, other.blocked_until)
        self.last_used = max(self.last_used, other.last_used)
        self.keys |= other.keys
        self.waiters |= other.waiters

    def idle(self, now: float) -> bool:
        return (
            self.inflight == 0
            and not self.waiters
            and now >= max(self.blocked_until, self.reset_at)
            and now - self.last_used > ROUTE_IDLE_TTL
        )


class RouteTable(Generic[W]):
    """Route key -> ``RouteBudget``; keys that report the same bucket (and major parameters) share one."""

    __slots__ = ("_buckets", "_routes")

    def __init__(self) -> None:
        self._routes: dict[str, RouteBudget[W]] = {}
        self._buckets: dict[str, RouteBudget[W]] = {}

    def budget(self, key: str) -> RouteBudget[W]:
        """The budget of ``key`` (a fresh one for a key not seen lately)."""
        state = self._routes.get(key)
        if state is None:
            state = self._routes[key] = RouteBudget(key)
        return state

    def learn(self, key: str, headers: CIMultiDictProxy[str], now: float) -> RouteBudget[W]:
        """Fold a response's rate-limit headers into the budget of ``key`` and return that budget."""
        state = self.budget(key)
        bucket = headers.get("X-RateLimit-Bucket")
        if bucket:
            state = self._bind_bucket(key, state, f"{bucket}:{routes.major_parameters(key)}")
        remaining = _header_float(headers, "X-RateLimit-Remaining")
        reset_after = _header_float(headers, "X-RateLimit-Reset-After")
        if remaining is None or reset_after is None:
            state.unreported(now)
            return state
        limit = _header_float(headers, "X-RateLimit-Limit")
        state.learn(
            None if limit is None else int(limit),
            int(remaining),
            reset_after,
            _header_float(headers, "X-RateLimit-Reset"),
            now,
        )
        return state

    def _bind_bucket(self, key: str, state: RouteBudget[W], bucket_key: str) -> RouteBudget[W]:
        shared = self._buckets.get(bucket_key)
        if shared is None:
            if state.bucket_key is None:
                state.bucket_key = bucket_key
                self._buckets[bucket_key] = state
            return state
        if shared is state or len(state.keys) > 1:
            return state
        shared.absorb(state)
        self._routes[key] = shared
        return shared

    def sweep(self, now: float) -> None:
        """Forget idle budgets."""
        for state in set(self._routes.values()):
            if state.idle(now):
                for key in state.keys:
                    if self._routes.get(key) is state:
                        del self._routes[key]
                if state.bucket_key is not None and self._buckets.get(state.bucket_key) is state:
                    del self._buckets[state.bucket_key]


def _header_float(headers: CIMultiDictProxy[str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def retry_after(headers: CIMultiDictProxy[str]) -> float:
    """How long a 429 asks us to wait: Retry-After, else the bucket's reset, else 1 s."""
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        seconds = _header_float(headers, name)
        if seconds is not None:
            return seconds
    return 1.0
