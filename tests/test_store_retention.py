"""Pruning old usage rows and /usage forget keep every total right through per-day aggregates."""

from datetime import timedelta

from bot.db import Database
from bot.store.inflight import InflightStore
from bot.store.retention import Forgotten, UsageRetention
from bot.store.usage import AnswerStart, UsageStore, UsageSummary
from tests.stores import ALICE, BOB, GENERAL, GUILD, NOW, RANDOM, Clock, record


async def everything(usage: UsageStore, **who: int) -> UsageSummary:
    return await usage.summary(guild_id=GUILD, since=None, **who)


async def test_prune_keeps_totals_per_user_channel_model_and_day(db: Database) -> None:
    clock = Clock(NOW)
    usage = UsageStore(db, clock=clock)
    rows = [(40, ALICE, GENERAL), (40, ALICE, GENERAL), (35, BOB, RANDOM), (1, ALICE, RANDOM)]
    for n, (days_ago, user, channel) in enumerate(rows):
        await record(usage, clock, f"r{n}", at=NOW - timedelta(days=days_ago), user=user, channel=channel)
    await record(usage, clock, "again", at=NOW - timedelta(days=40), status="stopped")
    scopes: list[dict[str, int]] = [{}, {"user_id": ALICE}, {"channel_id": RANDOM}]
    before = [await everything(usage, **who) for who in scopes]
    daily_before = await usage.daily(guild_id=GUILD, user_id=None, channel_id=None, since=None)

    assert await UsageRetention(db, clock=clock).prune(keep_days=30) == 4
    assert (await db.fetchone("SELECT COUNT(*) FROM usage"))[0] == 1  # yesterday's row stays
    for who, summary in zip(scopes, before, strict=True):
        assert await everything(usage, **who) == summary, who
    assert await usage.daily(guild_id=GUILD, user_id=None, channel_id=None, since=None) == daily_before
    # A 30-day window no longer sees the pruned days; 60 days still does, from the aggregates.
    recent = await usage.summary(guild_id=GUILD, since=NOW - timedelta(days=30))
    assert recent.requests == 1
    assert (await usage.summary(guild_id=GUILD, since=NOW - timedelta(days=60))).requests == 5
    assert await UsageRetention(db, clock=clock).prune(keep_days=30) == 0  # nothing more, nothing twice
    assert await everything(usage) == before[0]


async def test_prune_spares_answers_still_in_flight(db: Database) -> None:
    long_ago = NOW - timedelta(days=100)
    usage = UsageStore(db, clock=lambda: long_ago)
    await usage.start([AnswerStart("live", GUILD, GENERAL, ALICE, "m1")])
    await InflightStore(db, clock=lambda: long_ago).add([AnswerStart("live", GUILD, GENERAL, ALICE, "m")])
    assert await UsageRetention(db, clock=lambda: NOW).prune(keep_days=1) == 0
    assert (await db.fetchone("SELECT COUNT(*) FROM usage"))[0] == 1


async def test_forget_removes_a_users_rows_but_not_the_servers_totals(db: Database) -> None:
    clock = Clock(NOW)
    usage = UsageStore(db, clock=clock)
    retention = UsageRetention(db, clock=clock)
    await record(usage, clock, "a-old", at=NOW - timedelta(days=50), prompt=100)
    await record(usage, clock, "b-old", at=NOW - timedelta(days=50), user=BOB, prompt=7)
    await retention.prune(keep_days=30)  # Alice's old row now lives in an aggregate
    await record(usage, clock, "a-new", at=NOW - timedelta(days=1), prompt=1)
    await record(usage, clock, "a-today", at=NOW - timedelta(hours=1), prompt=2)  # kept for the quota
    await record(usage, clock, "a-dm", at=NOW, guild=None)  # another "server": not forgotten
    clock.now = NOW
    server = await everything(usage)
    quota_before = await usage.tokens_today(GUILD, ALICE)
    cooldown_before = await usage.last_request_at(GUILD, ALICE)

    assert await retention.forget(GUILD, ALICE) == Forgotten(deleted=1, kept_today=1)
    mine = await everything(usage, user_id=ALICE)
    assert (mine.requests, mine.total_tokens) == (1, 22)  # today's row only
    # Forgetting resets neither the daily quota nor the cooldown (issue 1).
    assert quota_before == 22 and await usage.tokens_today(GUILD, ALICE) == quota_before
    assert await usage.last_request_at(GUILD, ALICE) == cooldown_before
    after = await everything(usage)
    assert (after.requests, after.total_tokens, after.by_model) == (
        server.requests,
        server.total_tokens,
        server.by_model,
    )
    assert after.top_users == [(BOB, 27), (ALICE, 22)]  # nobody's name on the forgotten tokens
    dm = await usage.summary(guild_id=None, user_id=ALICE, since=None)
    assert dm.requests == 1
    rows = await db.fetchall(
        "SELECT request_id FROM usage WHERE user_id = ? AND guild_id IS NOT NULL"
        " UNION ALL SELECT day FROM usage_daily WHERE user_id = ?",
        (ALICE, ALICE),
    )
    assert [row[0] for row in rows] == ["a-today"]  # in the server, only today's row still names her
