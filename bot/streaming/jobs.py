"""The pacer's vocabulary: a job (the latest action under one key), a lane (one channel's queue of jobs), a
traced request (one REST request from its start to its response), which budgets a request claims from its
job, and what the pacer counts.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.streaming.budgets import INF, GlobalBudget, SlidingWindow
from bot.streaming.routes import ChannelBudget, Route

__all__ = ["Claim", "Job", "Lane", "LaneState", "PacerStats", "TracedRequest"]


@dataclass(slots=True)
class PacerStats:
    dispatched: int = 0  # jobs started
    replaced: int = 0  # pending versions superseded by a newer submit (never sent)
    throttled: int = 0  # times queued work or an unpaced request had to wait for a budget/spacing/block
    rate_limited: int = 0  # 429 responses seen by the trace
    unpaced: int = 0  # API requests seen by the trace that no job issued
    max_queue: int = 0  # most jobs pending at once


class Claim(enum.Flag):
    """Budgets a job reserved at dispatch that one of its requests takes over (each only once)."""

    NONE = 0
    GLOBAL = enum.auto()
    CHANNEL = enum.auto()
    ROUTE = enum.auto()
    ALL = GLOBAL | CHANNEL | ROUTE


class LaneState(enum.Enum):
    IDLE = "idle"  # no job queued
    READY = "ready"  # in the dispatcher's ready heap
    TIMED = "timed"  # in the timed heap until its channel budget, spacing or a route frees
    WAITING = "waiting"  # until a completion in its channel or on a route


# A lane-heap entry: (0 for priority else 1, first pending time, submission order, job).
_Entry = tuple[int, float, int, "Job"]


@dataclass(slots=True, eq=False)
class Job:
    """The latest action submitted under ``key`` and everyone awaiting it, while pending or running."""

    key: Hashable
    action: Callable[[], Awaitable[Any]]
    route: Route
    priority: bool
    first_at: float
    seq: int
    futures: list[asyncio.Future[Any]]
    entry: _Entry | None = None  # live lane-heap entry while queued
    lane: Lane | None = None
    parked: bool = False  # waiting for the in-flight job of the same key
    claimed: Claim = Claim.NONE
    released: Claim = Claim.NONE  # budgets already freed when the claimed request's response arrived

    def claim(self, request: Route) -> Claim:
        """Hand a request of this job the budgets reserved at dispatch that it matches (each only once)."""
        own = self.route
        claim = Claim.NONE
        if request.uses_global and own.uses_global:
            claim |= Claim.GLOBAL
        if request.channel_id is not None and request.channel_budget == own.channel_budget:
            claim |= Claim.CHANNEL
        if request.key == own.key:
            claim |= Claim.ROUTE
            # A webhook path names no channel, but the job's declared route is the request it paces.
            if own.channel_id is not None:
                claim |= Claim.CHANNEL
        claim &= ~self.claimed
        self.claimed |= claim
        return claim


class Lane:
    """Pending jobs that spend one channel budget (a channel's creates, or its edits; or no channel) plus
    that budget's window."""

    __slots__ = ("budget", "heap", "last_dispatch", "nonglobal", "served_at", "state", "version", "window")

    def __init__(self, budget: ChannelBudget | None, window: SlidingWindow | None) -> None:
        self.budget = budget
        self.window = window
        self.heap: list[_Entry] = []
        self.nonglobal = 0  # queued jobs whose requests don't spend the global budget
        self.last_dispatch = -INF
        self.served_at = -INF  # when the dispatcher last started one of its jobs (any lane, paced or not)
        self.state = LaneState.IDLE
        # Bumped on every reschedule; heap entries carrying an older version are stale.
        self.version = 0

    def head(self) -> Job | None:
        heap = self.heap
        while heap and heap[0][3].entry is not heap[0]:
            heapq.heappop(heap)
        return heap[0][3] if heap else None

    def jobs_in_order(self) -> Iterator[Job]:
        for entry in sorted(self.heap):
            if entry[3].entry is entry:
                yield entry[3]


@dataclass(slots=True, eq=False)
class TracedRequest:
    """One REST request the trace saw, from its start to its response."""

    route: Route
    job: Job | None  # the paced job whose action sent it; None: unpaced (discord.py's own)
    claim: Claim  # budgets taken over from that job
    global_budget: GlobalBudget | None  # set when it spends a global slot itself
    lane: Lane | None  # set when it spends its channel's message budget itself
    held: list[SlidingWindow] = field(default_factory=list)  # slots it took itself, freed at the response
    route_reserved: bool = False  # it reserved its route budget itself

    def free_at(self, now: float) -> float:
        """When the budgets it spends itself have room. Requests the pacer did not schedule may use the
        global headroom, never the hard limit."""
        at = now
        if self.global_budget is not None:
            at = max(at, self.global_budget.unpaced_free_at(now))
        if self.lane is not None and self.lane.window is not None:
            at = max(at, self.lane.window.free_at(now))
        return at
