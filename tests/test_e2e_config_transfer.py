"""/config export and import: a round trip through a JSON attachment, and a bad file that changes nothing."""

from __future__ import annotations

import json

from bot.client import StreamcordBot
from tests.e2e import World, command, overrides, running_bot, say


async def test_export_then_import_restores_the_settings(world: World) -> None:
    other = world.discord.add_channel(world.guild_id, "random")  # known to the bot from its start
    async with running_bot(world) as bot:
        await say(world, "config set", {"key": "temperature", "value": "0.3"})
        await say(world, "config set", {"key": "monthly_budget", "value": "25", "scope": "server"})
        await say(world, "config set", {"key": "blocked_users", "value": f"<@{world.bob}>"}, channel=other)
        saved = await overrides(bot)

        reply = await command(world, "config export")
        assert reply.ephemeral
        [exported] = reply.attachments
        assert exported.filename == f"streamcord-settings-{world.guild_id}.json"
        document = json.loads(exported.data)
        assert document["server"] == {"monthly_budget": "25.0"}
        assert document["channels"][str(other)] == {"blocked_users": f"<@{world.bob}>"}

        await say(world, "config set", {"key": "temperature", "value": "1.5"})
        await say(world, "config set", {"key": "history", "value": "2", "scope": "server"})
        await say(world, "config reset", {"scope": "channel"}, channel=other)
        file = world.discord.upload(exported.filename, exported.data)
        text = await say(world, "config import", {"file": file})
        assert text.startswith("Imported: 2 setting(s) changed, 1 removed;")
        assert await overrides(bot) == saved
        history = await say(world, "config history")
        assert f"<@{world.admin}> `history` (server): `2` → reset" in history


async def test_a_bad_import_changes_nothing(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "temperature", "value": "0.3"})
    saved = await overrides(bot)
    audit = await say(world, "config history")
    document = {
        "format": "streamcord-settings",
        "version": 1,
        "server": {"history": "4", "colour": "blue"},
        "channels": {str(world.channel_id): {"temperature": "9"}, "123": {"history": "1"}},
    }
    file = world.discord.upload("settings.json", json.dumps(document).encode())
    text = await say(world, "config import", {"file": file})
    lines = text.splitlines()
    assert lines[0] == "Nothing imported:"
    assert lines[1].startswith("- server: Unknown setting `colour`")
    assert lines[2] == f"- channel {world.channel_id}: temperature must be between 0 and 2"
    assert lines[3] == "- channel 123 is not a channel of this server"
    assert await overrides(bot) == saved
    assert await say(world, "config history") == audit

    not_json = world.discord.upload("settings.json", b"\xff not json")
    assert await say(world, "config import", {"file": not_json}) == (
        "Nothing imported:\n- the file is not JSON (export one with /config export)"
    )
    # Only Manage Server may import.
    refused = await say(world, "config import", {"file": file}, user=world.bob)
    assert refused.startswith("You need the Manage Server permission")
