"""Whether the bot can do its job: connected to the gateway, and the database answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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
