"""Admission's own bookkeeping, on a real database: questions racing each other (review item 11: the
cooldown is read after the database await and remembered before the next one, so they cannot both pass)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from bot.admission import Admission, Refused
from bot.budget import Budget
from bot.db import Database
from bot.pricing import PriceList
from bot.settings import ChannelSettings
from bot.store.alerts import AlertStore
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

GUILD, CHANNEL, ALICE, ADMIN = 1, 10, 100, 200


class BarrierUsage(UsageStore):
    """Both racing questions are inside the cooldown read before either gets its answer."""

    def __init__(self, db: Database, parties: int) -> None:
        super().__init__(db)
        self.barrier = asyncio.Barrier(parties)

    async def last_request_at(self, guild_id: int | None, user_id: int) -> datetime | None:
        async with asyncio.timeout(5):
            await self.barrier.wait()
        return await super().last_request_at(guild_id, user_id)


async def test_two_racing_questions_cannot_both_pass_the_cooldown(db: Database) -> None:
    settings = SettingsStore(db)
    await settings.set(GUILD, "guild", GUILD, "cooldown_seconds", "600", ADMIN)
    usage = BarrierUsage(db, parties=2)
    budget = Budget(usage, AlertStore(db), PriceList.load())
    admission = Admission(settings, usage, budget, ChannelSettings(model="m"))

    results = await asyncio.gather(
        *(admission.check(GUILD, CHANNEL, ALICE) for _ in range(2)), return_exceptions=True
    )

    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 1, results
    assert str(refused[0]).startswith("Slow down a little")
    # The refused one left the admitted one's time in place: a third question waits too.
    usage.barrier = asyncio.Barrier(1)
    with pytest.raises(Refused, match="Slow down"):
        await admission.check(GUILD, CHANNEL, ALICE)
