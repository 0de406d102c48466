"""The database failing under the bot: a lock held by another process, a write that fails. No answer runs
unaccounted, nothing waits forever, and a completed answer is never relabelled."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.client import StreamcordBot
from bot.status import NOT_RECORDED
from fakes.llm_server import Scenario
from tests.e2e import (
    LONG,
    STORY,
    World,
    bot_process,
    chat,
    first_reply,
    inflight_message_ids,
    mention,
    running_bot,
    usage_rows,
    wait_final,
)

FAST_BUSY = {"DATABASE_BUSY_TIMEOUT": "0.2"}


@contextlib.contextmanager
def locked(db_path: Path) -> Iterator[None]:
    """Another process holding SQLite's write lock (longer than the bot's busy timeout)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def inflight_rows(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return int(conn.execute("SELECT count(*) FROM inflight").fetchone()[0])


def failing_usage_writes(db_path: Path) -> None:
    """Every write to the usage table fails, as on a full or broken disk."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER fail_usage BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'disk I/O'); END"
        )


async def assert_refused_unrecorded(world: World, bot: StreamcordBot, message_id: int) -> None:
    """The answer failed visibly, the model was never asked, and nothing is left in progress."""
    await wait_final(world, message_id, lambda content: content == NOT_RECORDED)
    await world.discord.wait_for(lambda: len(bot.streams) == 0, what="answer over")
    assert world.llm.requests == []
    assert await bot.db.fetchall("SELECT * FROM inflight") == []


async def test_a_locked_database_fails_the_answer_before_the_model_is_asked(world: World) -> None:
    async with running_bot(world, **FAST_BUSY) as bot:
        with locked(world.db_path):
            message_id = await chat(world, "hello")
            await assert_refused_unrecorded(world, bot, message_id)
        assert await usage_rows(bot.db) == []
        # Once the lock is gone the next answer runs as usual.
        world.llm.enqueue(Scenario(text="Back again."))
        await wait_final(world, await chat(world, "again"), lambda content: content == "Back again.")


async def test_a_failing_write_fails_the_answer_before_the_model_is_asked(world: World) -> None:
    async with running_bot(world, **FAST_BUSY) as bot:
        failing_usage_writes(world.db_path)
        message_id = await chat(world, "hello")
        await assert_refused_unrecorded(world, bot, message_id)


async def wait_logged(caplog: pytest.LogCaptureFixture, world: World, text: str) -> None:
    await world.discord.wait_for(lambda: text in caplog.text, what=f"log line {text!r}")


async def test_the_final_usage_write_is_retried_past_a_passing_lock(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    async with running_bot(world, **FAST_BUSY) as bot:
        message_id = await chat(world, "a story")
        await world.discord.wait_for(lambda: "word3" in world.discord.messages[message_id].content)
        with locked(world.db_path):
            await wait_final(world, message_id)
            await wait_logged(caplog, world, "Database write failed (usage of request")
        await world.discord.wait_for(lambda: len(bot.streams) == 0, what="answer recorded")
        [row] = await usage_rows(bot.db)
        assert row["status"] == "completed" and row["completion_tokens"] == world.llm.requests[0].tokens_sent
        assert await bot.db.fetchall("SELECT * FROM inflight") == []
    assert world.discord.messages[message_id].content == STORY


async def test_recovery_leaves_an_answer_whose_final_version_was_shown(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The database was down for the whole end of the answer: its rows stayed open, but the user saw the
    complete answer, so the next start must not label it interrupted."""
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    async with running_bot(world, **FAST_BUSY) as bot:
        message_id = await chat(world, "a story")
        await world.discord.wait_for(lambda: "word3" in world.discord.messages[message_id].content)
        with locked(world.db_path):
            await wait_final(world, message_id)
            await wait_logged(caplog, world, "Database write given up (in-flight")
        await world.discord.wait_for(lambda: len(bot.streams) == 0, what="answer over")
    message = world.discord.messages[message_id]
    versions = len(message.versions)
    async with running_bot(world) as bot:
        await world.discord.wait_for(lambda: not inflight_message_ids(world.db_path), what="orphan closed")
        [row] = await usage_rows(bot.db)
    assert row["status"] == "interrupted"  # what happened is unknown to the database; the user saw it all
    assert message.content == STORY and len(message.versions) == versions


async def test_a_second_sigterm_exits_at_once_while_shutdown_waits_on_the_database(
    world: World, tmp_path: Path
) -> None:
    log_path = tmp_path / "bot.log"
    async with bot_process(world, log_path, DATABASE_BUSY_TIMEOUT="60") as process:
        with locked(world.db_path):
            message_id = await chat(world, "hello")  # its usage row waits on the lock
            await world.discord.wait_for(
                lambda: world.discord.messages[message_id].content == "▌", what="placeholder"
            )
            process.send_signal(signal.SIGTERM)
            await world.discord.wait_for(lambda: "Received SIGTERM" in log_path.read_text(), what="shutdown")
            process.send_signal(signal.SIGTERM)
            # Shutdown alone would wait for the answer (10 s) and the database (5 s) first.
            assert await asyncio.wait_for(process.wait(), 8) == 1
    assert "Received SIGTERM again: exiting now" in log_path.read_text()
    assert world.llm.requests == []


async def test_a_page_shown_before_its_id_was_recorded_is_finished_after_kill_9(
    world: World, tmp_path: Path
) -> None:
    """The reply reaches Discord before its message id reaches the database (here: locked): a kill -9 in
    between leaves an in-flight row naming no page. The next start still finds the page and finishes it."""
    world.llm.enqueue(Scenario(text=LONG, tokens_per_second=5, ttft=1.5))
    async with bot_process(world, tmp_path / "bot.log") as process:
        asked = await mention(world, "count")
        await world.discord.wait_for(lambda: inflight_rows(world.db_path) == 1, what="answer recorded")
        with locked(world.db_path):
            reply = await first_reply(world, asked)
            await world.discord.wait_for(
                lambda: world.discord.messages[reply].content.startswith("t0"), what="first text shown"
            )
            process.kill()
            await process.wait()
    assert inflight_message_ids(world.db_path) == []  # the page was never recorded
    async with running_bot(world) as bot:
        await wait_final(world, reply, lambda content: content.endswith("⏹ interrupted: the bot restarted"))
        await world.discord.wait_for(lambda: inflight_rows(world.db_path) == 0, what="orphan closed")
        [row] = await usage_rows(bot.db)
    assert row["status"] == "interrupted"


async def test_a_mention_shows_nothing_before_its_answer_is_recorded(world: World, tmp_path: Path) -> None:
    """A reply shown before its answer's rows exist is one no restart could find: a mention waits for the
    database, even one whose placeholder would show at once (it reads the conversation first); an
    interaction can't (Discord's 3-s deadline), so it shows its placeholder meanwhile."""
    world.llm.enqueue(Scenario(text=STORY))
    world.llm.enqueue(Scenario(text=STORY))
    earlier = await world.discord.post_message(world.channel_id, world.bob, "what do you think?")
    async with running_bot(world, DATABASE_BUSY_TIMEOUT="60") as bot:
        with locked(world.db_path):
            asked = await mention(world, "hello", reply_to=earlier)
            interaction = await chat(world, "hello too", user=world.bob)  # answered once its deadline nears
            assert world.discord.messages[interaction].content == "▌"
            assert not any(m.reference_id == asked for m in world.discord.messages.values())
        reply = await first_reply(world, asked)
        await wait_final(world, reply)
        await wait_final(world, interaction)
        await world.discord.wait_for(lambda: len(bot.streams) == 0, what="answers over")
    assert world.discord.messages[reply].content == STORY
    assert world.discord.messages[interaction].content == STORY
