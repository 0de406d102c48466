"""AnswerStarts: answers starting together are written in one transaction, all or none of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest

from bot.db import Database
from bot.store.inflight import InflightStore
from bot.store.starts import AnswerStarts
from bot.store.usage import AnswerStart, UsageStore

GUILD, CHANNEL = 100, 10


def answer(request_id: str, user: int = 1) -> AnswerStart:
    return AnswerStart(request_id, GUILD, CHANNEL, user, "m")


def recorder(db: Database) -> AnswerStarts:
    return AnswerStarts(db, UsageStore(db), InflightStore(db))


async def request_ids(db: Database, table: str) -> set[str]:
    return {row["request_id"] for row in await db.fetchall(f"SELECT request_id FROM {table}")}


async def test_answers_starting_together_share_one_commit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions = 0
    real = db.transaction

    def counted() -> AbstractAsyncContextManager[None]:
        nonlocal transactions
        transactions += 1
        return real()

    monkeypatch.setattr(db, "transaction", counted)
    starts = recorder(db)
    ids = [f"r{i}" for i in range(50)]
    assert await asyncio.gather(*(starts.record(answer(i)) for i in ids)) == [True] * 50
    assert transactions <= 2  # the first alone, then everyone who arrived meanwhile
    assert await request_ids(db, "usage") == await request_ids(db, "inflight") == set(ids)


async def test_a_refused_commit_writes_none_of_its_answers(db: Database) -> None:
    await UsageStore(db).start([answer("taken")])
    starts = recorder(db)
    outcomes = await asyncio.gather(*(starts.record(answer(i)) for i in ("a", "taken", "b")))
    assert outcomes == [False, False, False]
    assert await request_ids(db, "usage") == {"taken"}
    assert await request_ids(db, "inflight") == set()
    assert await starts.record(answer("c"))  # the next moment's answers are written as usual


@pytest.fixture
async def held(db: Database) -> AsyncIterator[asyncio.Event]:
    """Another task inside a transaction until the event is set: the writer waits for it."""
    release = asyncio.Event()
    inside = asyncio.Event()

    async def hold() -> None:
        async with db.transaction():
            inside.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await inside.wait()
    yield release
    release.set()
    await task


async def test_an_answer_cancelled_before_its_turn_is_never_written(
    db: Database, held: asyncio.Event
) -> None:
    starts = recorder(db)
    first = asyncio.create_task(starts.record(answer("first")))
    await asyncio.sleep(0)  # the writer takes it, and waits for the transaction held elsewhere
    second = asyncio.create_task(starts.record(answer("second")))
    await asyncio.sleep(0)
    second.cancel()
    held.set()
    assert await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await request_ids(db, "usage") == await request_ids(db, "inflight") == {"first"}
