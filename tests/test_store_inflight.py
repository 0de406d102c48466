from datetime import UTC, datetime

import pytest

from bot.db import Database, DatabaseLocation, Row, open_database
from bot.store.inflight import InflightReply, InflightStore
from bot.store.usage import AnswerStart, UsageStore
from tests.postgres import INTEGRITY_ERRORS

GUILD, CHANNEL, USER = 100, 10, 1
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


async def begin(db: Database, request_id: str, *, guild: int | None = GUILD) -> InflightStore:
    """What a stream does when it starts: a usage row, then the in-flight row."""
    inflight = InflightStore(db, clock=lambda: NOW)
    await UsageStore(db, clock=lambda: NOW).start([AnswerStart(request_id, guild, CHANNEL, USER, "m")])
    await inflight.add([AnswerStart(request_id, guild, CHANNEL, USER, "m")])
    return inflight


async def usage_row(db: Database, request_id: str) -> Row:
    row = await db.fetchone("SELECT * FROM usage WHERE request_id = ?", (request_id,))
    assert row is not None
    return row


async def test_orphans_are_only_previous_process_rows(db_location: DatabaseLocation) -> None:
    db = await open_database(db_location)
    inflight = await begin(db, "crashed")
    await inflight.set_messages("crashed", [111, 222])
    await begin(db, "dm", guild=None)
    await begin(db, "finished-cleanly")
    await inflight.remove("finished-cleanly")
    assert await inflight.orphans() == []  # this process's live replies are not orphans
    await db.close()  # the process "dies" without finishing them

    db = await open_database(db_location)
    try:
        inflight = InflightStore(db)
        await begin(db, "new-live")
        assert await inflight.orphans() == [
            InflightReply("crashed", GUILD, CHANNEL, USER, [111, 222], NOW),
            InflightReply("dm", None, CHANNEL, USER, [], NOW),
        ]
    finally:
        await db.close()


async def test_close_orphan_marks_interrupted_and_forgets_it(db_location: DatabaseLocation) -> None:
    db = await open_database(db_location)
    await begin(db, "a")
    await begin(db, "b")
    await begin(db, "done")
    await UsageStore(db).finish(
        "done", status="completed", prompt_tokens=5, completion_tokens=6, estimated=False, ttft_ms=1,
        duration_ms=2,
    )  # fmt: skip
    await db.close()

    db = await open_database(db_location)
    try:
        inflight = InflightStore(db, clock=lambda: NOW)
        await inflight.close_orphan("a")
        await inflight.close_orphan("b", prompt_tokens=40, completion_tokens=12)
        await inflight.close_orphan("done")  # finished before the crash: the row keeps its real numbers
        assert await inflight.orphans() == []

        a = await usage_row(db, "a")
        assert (a["status"], a["estimated"], a["finished_at"]) == (
            "interrupted",
            1,
            "2025-06-15T12:00:00.000000Z",
        )
        b = await usage_row(db, "b")
        assert (b["status"], b["prompt_tokens"], b["completion_tokens"], b["estimated"]) == (
            "interrupted",
            40,
            12,
            1,
        )
        done = await usage_row(db, "done")
        assert (done["status"], done["prompt_tokens"], done["estimated"]) == ("completed", 5, 0)
    finally:
        await db.close()


async def test_inflight_row_needs_its_usage_row(db: Database) -> None:
    with pytest.raises(INTEGRITY_ERRORS):
        await InflightStore(db).add([AnswerStart("no-usage", GUILD, CHANNEL, USER, "m")])
