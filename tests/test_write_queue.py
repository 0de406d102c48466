"""The write queue's rules, on a database that is away and then back (the real outage: test_db_outage)."""

from __future__ import annotations

import asyncio

from bot.db import DatabaseUnavailable
from bot.store.write_queue import WriteQueue


class FlakyDatabase:
    """Refuses every statement while ``down``; records the ones it ran, in order."""

    def __init__(self) -> None:
        self.down = True
        self.ran: list[tuple[str, tuple[int, ...]]] = []
        self.changed = asyncio.Event()

    async def execute(self, sql: str, params: tuple[int, ...] = ()) -> int:
        if self.down:
            raise DatabaseUnavailable("down")
        self.ran.append((sql, params))
        self.changed.set()
        return 1


async def test_writes_queue_in_order_up_to_the_limit_and_replay_when_the_database_is_back() -> None:
    db = FlakyDatabase()
    queue = WriteQueue(db, limit=3)  # type: ignore[arg-type]
    for n in range(5):
        assert await queue.write("W ?", (n,)) is None
    assert queue.pending == 3  # the two oldest were dropped
    db.down = False
    assert await queue.write("W ?", (5,)) is None  # behind the queue, never ahead of it (drops (2,))
    while queue.pending:
        db.changed.clear()
        await asyncio.wait_for(db.changed.wait(), timeout=10)
    assert [params for _, params in db.ran] == [(3,), (4,), (5,)]
    assert await queue.write("W ?", (6,)) == 1  # an empty queue writes at once
    await queue.close()
