"""Past one process: PostgreSQL + the REST proxy + two `python -m bot` processes running 2 of 4 shards each.

Four servers, one per shard. Each process answers and stops only in its own servers; IDENTIFYs of both
processes share the database's gate (0 × op 9); nothing upstream of the proxy is rate limited (0 × 429);
usage from both lands in one table; `kill -9` of one process mid-stream leaves its reply to its restart and
the other's streams untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bot.status import INTERRUPTED_BY_RESTART, stopped_by
from fakes import bot_env
from fakes.discord import FakeDiscord, FakeMessage
from fakes.llm_server import FakeLLM
from tests.e2e import STOP, slow
from tests.proxy import rest_proxy

SHARDS = 4
PROCESS_SHARDS = {"a": "0,1", "b": "2,3"}


@dataclass
class Server:
    guild: int
    channel: int
    alice: int
    admin: int


@dataclass
class Cluster:
    discord: FakeDiscord
    llm: FakeLLM
    servers: list[Server]  # servers[i] is on shard i
    env: dict[str, str]
    logs: Path

    async def chat(self, server: Server) -> FakeMessage:
        """/chat as Alice; the reply once its stop button shows (the answer is streaming)."""
        inter = await self.discord.run_slash_command(
            server.guild, server.channel, server.alice, "chat", {"prompt": "count"}
        )
        await self.discord.wait_for(lambda: inter.message_id is not None, what="/chat answered")
        assert inter.message_id is not None
        message = self.discord.messages[inter.message_id]
        await self.discord.wait_for(
            lambda: self.discord.bot_user_id in message.reactions.get(STOP, set()), what="stop button"
        )
        return message

    async def stop(self, server: Server, message: FakeMessage) -> None:
        await self.discord.add_reaction(server.channel, message.id, server.alice, STOP)
        await self.final(message, stopped_by("Alice"))

    async def final(self, message: FakeMessage, footer: str) -> None:
        await self.discord.wait_for(
            lambda: message.content.endswith(footer), timeout=20, what=f"{footer!r} on {message.id}"
        )


@contextlib.asynccontextmanager
async def bot_process(cluster: Cluster, name: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot` running the shards PROCESS_SHARDS[name]; ready once the fake sees them READY."""
    ids = [int(i) for i in PROCESS_SHARDS[name].split(",")]
    with (cluster.logs / f"bot-{name}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=os.environ | cluster.env | {"SHARD_IDS": PROCESS_SHARDS[name]},
            cwd=cluster.logs,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        await cluster.discord.wait_for(
            lambda: (
                all((i, SHARDS) in cluster.discord.ready_shards() for i in ids)
                or process.returncode is not None
            ),
            timeout=30,
            what=f"process {name}'s shards ready",
        )
        assert process.returncode is None, f"bot {name} exited; see {cluster.logs}"
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_two_processes_four_shards_one_proxy_one_database(postgres_url: str, tmp_path: Path) -> None:
    # max_concurrency 2: shards 0 and 2 share bucket 0, 1 and 3 bucket 1, across the two processes.
    async with (
        FakeDiscord(shards=SHARDS, max_concurrency=2, identify_interval=5.0) as discord,
        FakeLLM() as llm,
        rest_proxy(discord.api_base.removesuffix("/v10"), tmp_path / "proxy.log") as proxy,
    ):
        servers = []
        for shard in range(SHARDS):
            guild = discord.add_guild(f"Server {shard}", shard=(shard, SHARDS))
            servers.append(
                Server(
                    guild,
                    discord.add_channel(guild),
                    discord.add_user(guild, "Alice"),
                    discord.add_user(guild, "Ada", manage_guild=True),
                )
            )
        env = {
            **bot_env(discord, llm),
            "DATABASE_URL": postgres_url,
            "DISCORD_API_BASE": proxy,
            "DISCORD_REST_PROXY": "true",
            "SHARD_COUNT": str(SHARDS),
            "LLM_MAX_RETRIES": "0",
        }
        cluster = Cluster(discord, llm, servers, env, tmp_path)
        async with bot_process(cluster, "a"), bot_process(cluster, "b") as b:
            assert discord.ready_shards() == [(i, SHARDS) for i in range(SHARDS)]
            await discord.wait_for(lambda: bool(discord.commands), what="shard 0's process synced commands")

            # A stream and its 🛑 in every server, each answered by the process owning its shard.
            for _ in servers:
                llm.enqueue(slow())
            replies = await asyncio.gather(*(cluster.chat(s) for s in servers))
            await asyncio.gather(*(cluster.stop(s, m) for s, m in zip(servers, replies, strict=True)))

            # kill -9 of process b mid-stream: a's answer streams on, b's restart closes its own orphan.
            llm.enqueue(slow())
            llm.enqueue(slow())
            on_a, on_b = await cluster.chat(servers[0]), await cluster.chat(servers[2])
            b.kill()
            await b.wait()
            async with bot_process(cluster, "b"):
                await cluster.final(on_b, INTERRUPTED_BY_RESTART)
                await discord.wait_for(
                    lambda: discord.bot_user_id not in on_b.reactions.get(STOP, set()), what="b's button gone"
                )
                assert on_a.content.endswith("▌") and all(
                    "interrupted" not in v.content for v in on_a.versions
                )
                await cluster.stop(servers[0], on_a)

                # /usage in b's server, answered by b's restarted process from the shared table.
                usage = await discord.run_slash_command(
                    servers[2].guild, servers[2].channel, servers[2].admin, "usage show", {"scope": "server"}
                )
                await discord.wait_for(lambda: usage.message_id is not None, what="/usage answered")

        assert discord.identify_violations == 0 and discord.invalid_sessions == 0
        # Nothing upstream of the proxy is rate limited: it holds the global limit, each process its channels'
        # and their reactions (adding and removing one share a bucket the proxy learns only once answered).
        assert discord.count_429() == 0, [(r.method, r.path) for r in discord.requests if r.status == 429]

    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT guild_id, status FROM usage ORDER BY id")
    finally:
        await conn.close()
    statuses = {(r["guild_id"], r["status"]) for r in rows}
    assert {(s.guild, "stopped") for s in servers} <= statuses
    assert (servers[2].guild, "interrupted") in statuses and len(rows) == SHARDS + 2
