"""After a crash or kill -9: finalise the replies that were left streaming and close their usage rows."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import aiohttp
import discord

from bot import paced
from bot.discord_targets import STOP_EMOJI
from bot.shards import GuildFilter, every_guild
from bot.status import INTERRUPTED_BY_RESTART, split_status
from bot.store.inflight import InflightReply, InflightStore
from bot.store.starts import RECORD_TIMEOUT
from bot.streaming.pacer import Pacer
from bot.streaming.render import MARKER, render
from bot.tokens import estimate_tokens

log = logging.getLogger(__name__)

RETRIES = 4
SWEEP_LIMIT = 1000  # messages read per channel for pages no in-flight row names
RETRY_BACKOFF = 1.0  # seconds, doubled after each failure
# Failures that pass (discord.py already retried some of them): a Discord outage, the network.
_PASSING = (discord.DiscordServerError, aiohttp.ClientError, TimeoutError)


async def finalize_orphans(
    client: discord.Client, inflight: InflightStore, pacer: Pacer, belongs: GuildFilter = every_guild
) -> None:
    """Only the servers ``belongs`` picks: another process's shards are its own to recover. Call it before
    this process answers anything: what the sweep finds unfinished is a previous process's."""
    started = discord.utils.utcnow()
    orphans = await inflight.orphans(belongs)
    # First, while the rows say where to look: a kill during recovery leaves them for the next start.
    await _sweep(client, pacer, orphans, started)
    await _close_orphans(client, inflight, pacer, orphans)


async def _close_orphans(
    client: discord.Client, inflight: InflightStore, pacer: Pacer, orphans: list[InflightReply]
) -> None:
    for orphan in orphans:
        shown = ""
        try:
            if orphan.message_ids:
                shown = await _mark_with_retries(client, pacer, orphan)
        except _PASSING as exc:  # Discord is struggling: the next start tries again
            log.warning(
                "Orphaned reply %s kept for the next start: Discord failed: %r", orphan.request_id, exc
            )
            continue
        except discord.HTTPException as exc:  # deleted, or no longer ours to edit: nothing more to do there
            log.warning(
                "Orphaned reply %s could not be finalised in Discord: %s %s",
                orphan.request_id,
                exc.status,
                exc.code,
            )
        except Exception:  # one reply that fails in an unexpected way must not keep the others open
            log.exception("Orphaned reply %s could not be finalised in Discord", orphan.request_id)
        try:
            # Tokens the user saw, at least; what the server generated past that is unknown.
            await inflight.close_orphan(orphan.request_id, completion_tokens=estimate_tokens(shown) or None)
        except Exception:  # nor one row the database will not close
            log.exception("Orphaned reply %s could not be closed in the database", orphan.request_id)
            continue
        log.info("Closed reply %s left streaming by a previous run", orphan.request_id)


async def _sweep(
    client: discord.Client, pacer: Pacer, orphans: list[InflightReply], started: datetime
) -> None:
    """A reply's page reaches Discord before its id reaches the database: a process killed in between
    leaves a page showing the cursor that no in-flight row names. Such pages are the dead process's own
    messages, in a channel where it was answering, created after its answers there began: each of those
    channels is read for them."""
    if client.user is None:
        return
    since: dict[int, datetime] = {}
    for orphan in orphans:
        # With a margin: an interaction's placeholder may show while its answer still waits for the database.
        begun = orphan.started_at - timedelta(seconds=RECORD_TIMEOUT)
        since[orphan.channel_id] = min(since.get(orphan.channel_id, begun), begun)
    # Channels in parallel: each one's edits wait for its own budget.
    await asyncio.gather(*(_sweep_channel(client, pacer, c, after, started) for c, after in since.items()))


async def _sweep_channel(
    client: discord.Client, pacer: Pacer, channel_id: int, after: datetime, before: datetime
) -> None:
    assert client.user is not None
    try:
        messages = await paced.messages_between(client, pacer, channel_id, after, before, SWEEP_LIMIT)
    except (discord.HTTPException, *_PASSING) as exc:
        log.warning("Channel %s not swept for unfinished replies: %r", channel_id, exc)
        return
    for message in messages:
        if message.author.id != client.user.id or not message.content.endswith(MARKER):
            continue
        try:
            await _finish_page(client, pacer, message, message)
        except (discord.HTTPException, *_PASSING) as exc:  # the next start tries again
            log.warning("Page %s left streaming could not be finished: %r", message.id, exc)
            continue
        log.info("Closed page %s left streaming by a previous run", message.id)


async def _mark_with_retries(client: discord.Client, pacer: Pacer, orphan: InflightReply) -> str:
    for attempt in range(RETRIES - 1):
        try:
            return await _mark_interrupted(client, pacer, orphan)
        except _PASSING as exc:
            log.info("Orphaned reply %s: Discord failed (%r), retrying", orphan.request_id, exc)
            await asyncio.sleep(RETRY_BACKOFF * 2**attempt)
    return await _mark_interrupted(client, pacer, orphan)


async def _mark_interrupted(client: discord.Client, pacer: Pacer, orphan: InflightReply) -> str:
    """Put the interrupted line on the last page in place of the cursor and any live status line, unless its
    final version was shown (only its records were lost: it stays as the user saw it), and take the stop
    button off; returns the text shown."""
    pages = [await paced.fetch_message(client, pacer, orphan.channel_id, m) for m in orphan.message_ids]
    text = await _finish_page(client, pacer, pages[-1], pages[0])
    return "".join(page.content for page in pages[:-1]) + text


async def _finish_page(
    client: discord.Client, pacer: Pacer, last: discord.Message, first: discord.Message
) -> str:
    """The interrupted line in place of the cursor and any live status line on a reply's last page, unless
    its final version was shown; the stop button off its first page. Returns the page's text."""
    text, _ = split_status(last.content)
    if last.content.endswith(MARKER):
        content, *overflow = render(text, streaming=False, footer=INTERRUPTED_BY_RESTART)
        if overflow:  # no room for the line on this page; at least remove the in-progress cursor
            content = text
        await paced.edit(pacer, last, content)
    button = any(r.me and str(r.emoji) == STOP_EMOJI for r in first.reactions)
    if button and client.user is not None:
        await paced.remove_reaction(client, pacer, first.channel.id, first.id, STOP_EMOJI, client.user.id)
    return text
