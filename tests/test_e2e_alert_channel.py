"""alert_channel must be a channel of the same server: /config set and /config import refuse another
server's channel, and a stored one (from before the check) is checked again when an alert is due."""

from __future__ import annotations

import json
from pathlib import Path

from fakes.llm_server import Scenario
from tests.e2e import World, bot_messages, chat_until_done, running_bot, say

NOT_HERE = "`alert_channel` must be a channel of this server"


async def test_another_servers_channel_is_refused_and_never_warned(world: World, tmp_path: Path) -> None:
    other_guild = world.discord.add_guild("Someone else's server")
    foreign = world.discord.add_channel(other_guild, "their-channel")
    mine = world.discord.add_channel(world.guild_id, "bot-alerts")
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."fake-model"]\ninput = 10000\noutput = 0\n', encoding="utf-8")
    async with running_bot(world, PRICES_FILE=str(prices)) as bot:
        value = {"key": "alert_channel", "value": f"<#{foreign}>", "scope": "server"}
        assert await say(world, "config set", value) == NOT_HERE
        document = {"format": "streamcord-settings", "version": 1, "server": {"alert_channel": str(foreign)}}
        file = world.discord.upload("settings.json", json.dumps(document).encode())
        assert await say(world, "config import", {"file": file}) == f"Nothing imported:\n- server: {NOT_HERE}"
        assert await bot.settings.overrides(world.guild_id, world.channel_id) == ({}, {})
        text = await say(world, "config set", {**value, "value": f"<#{mine}>"})
        assert text.startswith(f"Set `alert_channel` to `<#{mine}>`")

        # A foreign channel stored before the check: the alert that falls due is not sent there.
        await bot.settings.set(world.guild_id, "guild", world.guild_id, "alert_channel", str(foreign), 1)
        await bot.settings.set(world.guild_id, "guild", world.guild_id, "monthly_budget", "1", 1)
        world.llm.enqueue(Scenario(text="x", prompt_tokens=100))  # 1.00 of 1.00: both alerts due
        await chat_until_done(world, bot, "spend it all")
        await bot.budget_watch.wait_idle()
    assert bot_messages(world, foreign) == []
