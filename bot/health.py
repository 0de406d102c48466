"""Whether the bot can do its job: connected to the gateway, the database answering, and a model to ask.

A model whose circuit is open is reported, but the bot is up (it answers the other models, and says so to
anyone asking the one that is down): /healthz stays 200 and lists it. Only when every model's circuit is
open can no question be answered: then 503."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from bot.circuit import CircuitState, CircuitStatus
from bot.db import Database

log = logging.getLogger(__name__)

DB_TIMEOUT = 2.0  # a write transaction holds the one connection; longer than this is not healthy


async def problem(gateway_problem: Callable[[], str | None], db: Database) -> str | None:
    """None when healthy, else the reason, fit for a monitoring page (the gateway's names shards down)."""
    gateway = gateway_problem()
    if gateway is not None:
        return gateway
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            await db.fetchone("SELECT 1")
    except TimeoutError:
        return f"database did not answer within {DB_TIMEOUT:g} s"
    except Exception as exc:  # a closed or broken connection: the reason is what the operator needs
        log.warning("Health check: database error %r", exc)
        return f"database error: {type(exc).__name__}"
    return None


@dataclass(frozen=True)
class HealthReport:
    problem: str | None = None  # the bot can't do its job: 503, with this reason
    notes: tuple[str, ...] = ()  # up, but something is degraded (a model's circuit open)

    @property
    def status(self) -> int:
        return 200 if self.problem is None else 503

    @property
    def text(self) -> str:
        return "\n".join([self.problem or "ok", *self.notes]) + "\n"


async def check(
    gateway_problem: Callable[[], str | None], db: Database, circuits: Callable[[], list[CircuitStatus]]
) -> HealthReport:
    reason = await problem(gateway_problem, db)
    known = circuits()
    tripped = [c for c in known if c.state is not CircuitState.CLOSED]
    notes = tuple(f"model circuit {c.state}: {c.name} ({_when(c)})" for c in tripped)
    if reason is None and tripped and len(tripped) == len(known):
        reason = "every model circuit is open"
    return HealthReport(reason, notes)


def _when(circuit: CircuitStatus) -> str:
    if circuit.state is CircuitState.PROBING:
        return "one probe under way"
    return f"next probe in {math.ceil(circuit.retry_in)} s"  # never rounds below the time left
