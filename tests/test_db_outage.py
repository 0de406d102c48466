"""A database that is down at start, or goes away mid-run (PostgreSQL stopped and restarted with pg_ctl)."""

from __future__ import annotations

import asyncio
import socket

from bot.status import NOT_RECORDED
from fakes.llm_server import Scenario
from tests.e2e import World, chat, run_cli, running_bot, usage_rows, wait_final
from tests.postgres import PostgresServer

STORY = " ".join(f"word{i}" for i in range(40)) + "."


def test_a_dead_database_at_start_is_one_line_and_exit_2(world: World) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli(**world.env(DATABASE_URL=f"postgresql://streamcord:secret@127.0.0.1:{port}/streamcord"))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Database error: PostgreSQL at postgresql://streamcord@127.0.0.1:"), lines
    assert "Traceback" not in result.stderr and "secret" not in result.stderr


async def test_usage_written_during_an_outage_lands_when_the_database_is_back(
    world: World, postgres_server: PostgresServer, postgres_url: str
) -> None:
    async with running_bot(world, DATABASE_URL=postgres_url) as bot:
        world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
        reply = await chat(world, "tell me a story")
        await world.discord.wait_for(lambda: len(world.llm.requests) == 1, what="model asked")
        # The usage row exists before the outage; its final numbers arrive during it.
        for _ in range(200):
            if await usage_rows(bot.db):
                break
            await asyncio.sleep(0.01)
        assert await usage_rows(bot.db), "the usage row was never started"
        postgres_server.stop()
        try:
            await wait_final(world, reply)
            assert world.discord.messages[reply].content == STORY  # the answer itself is unaffected
            await world.discord.wait_for(lambda: bot.usage.writes.pending == 1, what="usage write queued")

            # A new question while the database is away fails visibly, and the model is never asked: an
            # answer nobody can account for must not run (issue 12).
            second = await chat(world, "again?")
            await wait_final(world, second, lambda content: content == NOT_RECORDED)
            assert len(world.llm.requests) == 1
        finally:
            postgres_server.start()
        await world.discord.wait_for(
            lambda: bot.usage.writes.pending == 0 and bot.inflight.writes.pending == 0,
            timeout=30,
            what="queued writes replayed",
        )
        [first] = await usage_rows(bot.db)
        assert first["status"] == "completed" and first["completion_tokens"] > 0
        assert await bot.db.fetchall("SELECT * FROM inflight") == []  # nothing left to "recover"
