import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.db import Database
from bot.pricing import TokenCounts
from bot.status import Status
from bot.store.usage import CSV_COLUMNS, AnswerStart, UsageStore, period_since
from tests.stores import ALICE, BOB, CAROL, GENERAL, GUILD, NOW, OTHER_GUILD, RANDOM, Clock, record


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def usage(db: Database, clock: Clock) -> UsageStore:
    return UsageStore(db, clock=clock)


async def test_start_then_finish(db: Database, usage: UsageStore, clock: Clock) -> None:
    await usage.start([AnswerStart("r1", GUILD, GENERAL, ALICE, "gpt-x")])
    row = await db.fetchone("SELECT * FROM usage WHERE request_id = 'r1'")
    assert (row["status"], row["model"], row["finished_at"], row["prompt_tokens"]) == (
        "streaming",
        "gpt-x",
        None,
        0,
    )

    clock.now = NOW + timedelta(seconds=3)
    await usage.finish(
        "r1",
        status="error",
        prompt_tokens=5,
        completion_tokens=7,
        estimated=True,
        ttft_ms=250.6,
        duration_ms=3000.2,
        error="APITimeoutError",
    )
    row = await db.fetchone("SELECT * FROM usage WHERE request_id = 'r1'")
    assert dict(row) | {"id": None} == {
        "id": None,
        "request_id": "r1",
        "guild_id": GUILD,
        "channel_id": GENERAL,
        "user_id": ALICE,
        "model": "gpt-x",
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "estimated": 1,
        "ttft_ms": 251,
        "duration_ms": 3000,
        "status": "error",
        "error": "APITimeoutError",
        "started_at": "2025-06-15T12:00:00.000000Z",
        "finished_at": "2025-06-15T12:00:03.000000Z",
        "reasoning_tokens": 0,
    }


async def test_active_since_sees_answers_in_progress_or_ended_lately(usage: UsageStore, clock: Clock) -> None:
    longest = timedelta(minutes=10)
    assert not await usage.active_since(NOW - timedelta(minutes=1), longest=longest)
    await usage.start([AnswerStart("r1", GUILD, GENERAL, ALICE, "gpt-x")])
    clock.now = NOW + timedelta(minutes=5)
    assert await usage.active_since(clock.now - timedelta(seconds=40), longest=longest)  # still in progress
    await usage.finish(
        "r1",
        status=Status.COMPLETED,
        prompt_tokens=1,
        completion_tokens=1,
        estimated=False,
        ttft_ms=1,
        duration_ms=1,
    )
    assert await usage.active_since(clock.now - timedelta(seconds=40), longest=longest)  # ended just now
    clock.now += timedelta(minutes=1)
    assert not await usage.active_since(clock.now - timedelta(seconds=40), longest=longest)


async def test_finish_rejects_unknown_request_and_non_final_status(usage: UsageStore) -> None:
    with pytest.raises(LookupError, match="nope"):
        await usage.finish(
            "nope", status="completed", prompt_tokens=1, completion_tokens=1, estimated=False, ttft_ms=None,
            duration_ms=None,
        )  # fmt: skip
    await usage.start([AnswerStart("r1", GUILD, GENERAL, ALICE, "m")])
    with pytest.raises(ValueError, match="final status"):
        await usage.finish(
            "r1", status="streaming", prompt_tokens=1, completion_tokens=1, estimated=False, ttft_ms=None,
            duration_ms=None,
        )  # fmt: skip


async def test_summaries_by_period_user_and_channel(usage: UsageStore, clock: Clock) -> None:
    await record(usage, clock, "old", at=NOW - timedelta(days=40), user=BOB, prompt=1000, completion=0)
    await record(usage, clock, "d10", at=NOW - timedelta(days=10), user=BOB, channel=RANDOM)
    await record(usage, clock, "d3", at=NOW - timedelta(days=3), user=CAROL, estimated=True, status="stopped")
    await record(usage, clock, "today1", at=NOW - timedelta(hours=1), user=ALICE, prompt=1, completion=2)
    await record(usage, clock, "today2", at=NOW, user=ALICE, channel=RANDOM, status="error", completion=0)
    await record(usage, clock, "elsewhere", at=NOW, guild=OTHER_GUILD, user=ALICE, prompt=999)
    # Still streaming: counted, no tokens yet.
    await usage.start([AnswerStart("live", GUILD, GENERAL, CAROL, "m1")])

    everything = await usage.summary(guild_id=GUILD, since=None)
    assert (everything.requests, everything.prompt_tokens, everything.completion_tokens) == (6, 1031, 42)
    assert everything.total_tokens == 1073
    assert everything.estimated_requests == 1
    assert everything.by_status == {"completed": 3, "stopped": 1, "error": 1, "streaming": 1}
    assert everything.top_users == [(BOB, 1030), (CAROL, 30), (ALICE, 13)]

    today = await usage.summary(guild_id=GUILD, since=period_since("today", NOW))
    assert (today.requests, today.total_tokens) == (3, 13)
    week = await usage.summary(guild_id=GUILD, since=period_since("7d", NOW))
    assert week.requests == 4 and week.top_users == [(CAROL, 30), (ALICE, 13)]
    month = await usage.summary(guild_id=GUILD, since=period_since("30d", NOW))
    assert month.requests == 5

    bob = await usage.summary(guild_id=GUILD, user_id=BOB, since=None)
    assert (bob.requests, bob.total_tokens, bob.top_users) == (2, 1030, [(BOB, 1030)])
    random = await usage.summary(guild_id=GUILD, channel_id=RANDOM, since=None)
    assert (random.requests, random.total_tokens) == (2, 40)
    alice_random = await usage.summary(guild_id=GUILD, user_id=ALICE, channel_id=RANDOM, since=None)
    assert alice_random.requests == 1

    nobody = await usage.summary(guild_id=12345, since=None)
    assert (nobody.requests, nobody.total_tokens, nobody.by_status, nobody.top_users) == (0, 0, {}, [])
    assert len((await usage.summary(guild_id=GUILD, since=None, top_n=1)).top_users) == 1


def test_period_since() -> None:
    assert period_since("today", NOW) == datetime(2025, 6, 15, tzinfo=UTC)
    assert period_since("7d", NOW) == NOW - timedelta(days=7)
    assert period_since("30d", NOW) == NOW - timedelta(days=30)
    assert period_since("all", NOW) is None


async def test_tokens_today_counts_this_utc_day_in_this_server(usage: UsageStore, clock: Clock) -> None:
    await record(usage, clock, "yesterday", at=datetime(2025, 6, 14, 23, 59, 59, tzinfo=UTC), prompt=500)
    await record(usage, clock, "midnight", at=datetime(2025, 6, 15, tzinfo=UTC), prompt=1, completion=1)
    await record(usage, clock, "noon", at=NOW, prompt=3, completion=4)
    await record(usage, clock, "other-server", at=NOW, guild=OTHER_GUILD, prompt=100)
    await record(usage, clock, "other-user", at=NOW, user=BOB, prompt=100)
    await record(usage, clock, "dm", at=NOW, guild=None, prompt=50, completion=0)

    assert await usage.tokens_today(GUILD, ALICE) == 9
    assert await usage.tokens_today(None, ALICE) == 50
    assert await usage.tokens_today(GUILD, CAROL) == 0
    clock.now = datetime(2025, 6, 16, 0, 0, 1, tzinfo=UTC)
    assert await usage.tokens_today(GUILD, ALICE) == 0


async def test_last_request_at(usage: UsageStore, clock: Clock) -> None:
    assert await usage.last_request_at(GUILD, ALICE) is None
    await record(usage, clock, "a", at=NOW - timedelta(minutes=5))
    await record(usage, clock, "b", at=NOW - timedelta(minutes=1))
    await record(usage, clock, "c", at=NOW, guild=OTHER_GUILD)
    assert await usage.last_request_at(GUILD, ALICE) == NOW - timedelta(minutes=1)


async def test_200_concurrent_finishes_all_land(db: Database, usage: UsageStore) -> None:
    ids = [f"req-{i}" for i in range(200)]
    await usage.start([AnswerStart(rid, GUILD, GENERAL, i % 7, "m") for i, rid in enumerate(ids)])

    async def finish(i: int, rid: str) -> None:
        await usage.finish(
            rid, status="completed", prompt_tokens=i, completion_tokens=1, estimated=i % 2 == 0, ttft_ms=1,
            duration_ms=2,
        )  # fmt: skip

    # Summaries (transactions) run alongside the single-statement writes.
    results = await asyncio.gather(
        *(finish(i, rid) for i, rid in enumerate(ids)),
        *(usage.summary(guild_id=GUILD, since=None) for _ in range(5)),
    )
    assert all(r is None for r in results[:200])
    summary = await usage.summary(guild_id=GUILD, since=None)
    assert summary.by_status == {"completed": 200}
    assert (summary.prompt_tokens, summary.completion_tokens) == (sum(range(200)), 200)
    assert summary.estimated_requests == 100
    row = await db.fetchone("SELECT COUNT(*) FROM usage WHERE finished_at IS NOT NULL")
    assert row[0] == 200


async def test_export_csv(usage: UsageStore, clock: Clock) -> None:
    await record(usage, clock, "before", at=datetime(2025, 6, 13, 23, 59, tzinfo=UTC))
    await record(usage, clock, "on-day", at=datetime(2025, 6, 14, 0, 0, tzinfo=UTC), estimated=True)
    await record(usage, clock, "dm", at=NOW, guild=None, status="stopped")

    async def cost(guild_id: int | None, model: str, tokens: TokenCounts) -> float | None:
        return None if guild_id is None else tokens.prompt / 1000

    out = io.StringIO()
    assert await usage.export_csv(date(2025, 6, 14), out, cost) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["request_id"], r["guild_id"], r["estimated"], r["status"]) for r in rows] == [
        ("on-day", str(GUILD), "1", "completed"),
        ("dm", "", "0", "stopped"),
    ]
    assert rows[0]["started_at"] == "2025-06-14T00:00:00.000000Z" and rows[0]["ttft_ms"] == "120"
    assert [r["cost"] for r in rows] == ["0.010000", ""]  # no price: an empty cell, not a zero

    empty = io.StringIO()
    assert await usage.export_csv(date(2030, 1, 1), empty, cost) == 0
    assert empty.getvalue().strip() == ",".join(CSV_COLUMNS)


async def test_finish_records_the_model_that_answered(usage: UsageStore, db: Database) -> None:
    for request_id, answered_by in (("kept", None), ("fell-back", "fallback")):
        await usage.start([AnswerStart(request_id, GUILD, GENERAL, ALICE, "primary")])
        await usage.finish(
            request_id,
            status="completed",
            prompt_tokens=1,
            completion_tokens=2,
            estimated=False,
            ttft_ms=None,
            duration_ms=None,
            model=answered_by,
        )
    rows = await db.fetchall("SELECT request_id, model FROM usage ORDER BY id")
    assert [tuple(r) for r in rows] == [("kept", "primary"), ("fell-back", "fallback")]


async def no_cost(guild_id: int | None, model: str, tokens: TokenCounts) -> float | None:
    return None


@pytest.mark.parametrize("hostile", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd"])
async def test_export_csv_neutralises_cells_a_spreadsheet_would_run(
    usage: UsageStore, clock: Clock, hostile: str
) -> None:
    clock.now = NOW
    await usage.start([AnswerStart("r1", GUILD, GENERAL, ALICE, hostile)])
    await usage.finish(
        "r1",
        status=Status.ERROR,
        prompt_tokens=1,
        completion_tokens=0,
        estimated=True,
        ttft_ms=None,
        duration_ms=5,
        error=hostile,
        model=hostile,
    )
    out = io.StringIO()
    assert await usage.export_csv(date(2000, 1, 1), out, no_cost) == 1
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["model"] == row["error"] == "'" + hostile
    assert row["prompt_tokens"] == "1"  # numbers are left as they are


async def test_export_csv_reads_every_row_in_batches(usage: UsageStore, clock: Clock) -> None:
    for i in range(1234):  # several rows share each start time: batches must not skip or repeat them
        clock.now = NOW + timedelta(seconds=i // 3)
        await usage.start([AnswerStart(f"r{i:04d}", GUILD, GENERAL, ALICE, "m1")])
    out = io.StringIO()
    assert await usage.export_csv(date(2000, 1, 1), out, no_cost) == 1234
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["request_id"] for r in rows] == [f"r{i:04d}" for i in range(1234)]
