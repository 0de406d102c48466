"""After a crash or kill -9: finalise the replies that were left streaming and close their usage rows."""

from __future__ import annotations

import logging

import discord

from bot.discord_targets import NO_MENTIONS
from bot.store.inflight import InflightStore
from bot.streaming.manager import INTERRUPTED_FOOTER
from bot.streaming.pacer import Pacer
from bot.streaming.render import MARKER
from bot.streaming.routes import route_key

log = logging.getLogger(__name__)


async def finalize_orphans(client: discord.Client, inflight: InflightStore, pacer: Pacer) -> None:
    for orphan in await inflight.orphans():
        if orphan.message_ids:
            try:
                await _mark_interrupted(client, pacer, orphan.channel_id, orphan.message_ids[-1])
            except discord.HTTPException as exc:
                log.info(
                    "Orphaned reply %s could not be edited (%s %s)", orphan.request_id, exc.status, exc.code
                )
        await inflight.close_orphan(orphan.request_id)
        log.info("Closed reply %s left streaming by a previous run", orphan.request_id)


async def _mark_interrupted(client: discord.Client, pacer: Pacer, channel_id: int, message_id: int) -> None:
    message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
    path = f"/channels/{channel_id}/messages/{message_id}"
    current = await pacer.run(message.fetch, channel_id=None, route=route_key("GET", path), uses_global=True)
    text = current.content.removesuffix(MARKER).rstrip()
    content = f"{text}\n{INTERRUPTED_FOOTER}" if text else INTERRUPTED_FOOTER
    if len(content) > 2000:
        content = text  # no room for the marker; at least remove the in-progress cursor
    await pacer.run(
        lambda: message.edit(content=content, allowed_mentions=NO_MENTIONS),
        channel_id=channel_id,
        route=route_key("PATCH", path),
        uses_global=True,
    )
