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

SWEEP_LIMIT = 1000  # messages read per channel for pages no in-flight row names
RETRY_BACKOFF = 1.0  # seconds, doubled after each round that Discord failed
RETRY_MAX = 60.0  # a long outage: retried about once a minute until it ends (or the bot stops)
# Failures that pass (discord.py already retried some of them): a Discord outage, the network.
_PASSING = (discord.DiscordServerError, aiohttp.ClientError, TimeoutError)


async def finalize_orphans(
    client: discord.Client, inflight: InflightStore, pacer: Pacer, belongs: GuildFilter = every_guild
) -> None:
    """Only the servers ``belongs`` picks: another process's shards are its own to recover. Call it before
    this process answers anything: what the sweep finds unfinished is a previous process's. What Discord
    fails to take is retried until it does: a reply left showing the cursor would otherwise wait for the
    next restart, which may be months away."""
    started = discord.utils.utcnow()
    orphans = await inflight.orphans(belongs)
    # First, while the rows say where to look: a kill during recovery leaves them for the next start.
    pages = await _sweep(client, pacer, orphans, started)
    delay = RETRY_BACKOFF
    while True:
        pages = await _finish_pages(client, pacer, pages)
        orphans = await _close_orphans(client, inflight, pacer, orphans)
        if not pages and not orphans:
            return
        log.warning(
            "Discord failed to take %d orphaned replies and %d pages left streaming: retrying in %.0f s",
            len(orphans),
            len(pages),
            delay,
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


async def _close_orphans(
    client: discord.Client, inflight: InflightStore, pacer: Pacer, orphans: list[InflightReply]
) -> list[InflightReply]:
    """Returns the orphans to try again: those Discord failed to take for a passing reason."""
    again: list[InflightReply] = []
    for orphan in orphans:
        shown = ""
        try:
            if orphan.message_ids:
                shown = await _mark_interrupted(client, pacer, orphan)
        except _PASSING as exc:  # Discord is struggling
            log.info("Orphaned reply %s: Discord failed (%r)", orphan.request_id, exc)
            again.append(orphan)
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
    return again


async def _sweep(
    client: discord.Client, pacer: Pacer, orphans: list[InflightReply], started: datetime
) -> list[discord.Message]:
    """A reply's page reaches Discord before its id reaches the database: a process killed in between
    leaves a page showing the cursor that no in-flight row names. Such pages are the dead process's own
    messages, in a channel where it was answering, created after its answers there began: each of those
    channels is read for them, and the pages found returned."""
    if client.user is None:
        return []
    since: dict[int, datetime] = {}
    for orphan in orphans:
        # With a margin: an interaction's placeholder may show while its answer still waits for the database.
        begun = orphan.started_at - timedelta(seconds=RECORD_TIMEOUT)
        since[orphan.channel_id] = min(since.get(orphan.channel_id, begun), begun)
    # Channels in parallel: each one's edits wait for its own budget.
    found = await asyncio.gather(
        *(_sweep_channel(client, pacer, c, after, started) for c, after in since.items())
    )
    return [page for pages in found for page in pages]


async def _sweep_channel(
    client: discord.Client, pacer: Pacer, channel_id: int, after: datetime, before: datetime
) -> list[discord.Message]:
    assert client.user is not None
    try:
        messages = await paced.messages_between(client, pacer, channel_id, after, before, SWEEP_LIMIT)
    except (discord.HTTPException, *_PASSING) as exc:
        log.warning("Channel %s not swept for unfinished replies: %r", channel_id, exc)
        return []
    return [m for m in messages if m.author.id == client.user.id and m.content.endswith(MARKER)]


async def _finish_pages(
    client: discord.Client, pacer: Pacer, pages: list[discord.Message]
) -> list[discord.Message]:
    """Finish the pages the sweep found, channels in parallel; returns those Discord failed to take for a
    passing reason."""
    by_channel: dict[int, list[discord.Message]] = {}
    for page in pages:
        by_channel.setdefault(page.channel.id, []).append(page)
    failed = await asyncio.gather(*(_finish_channel_pages(client, pacer, p) for p in by_channel.values()))
    return [page for pages in failed for page in pages]


async def _finish_channel_pages(
    client: discord.Client, pacer: Pacer, pages: list[discord.Message]
) -> list[discord.Message]:
    again: list[discord.Message] = []
    for page in pages:
        try:
            await _finish_page(client, pacer, page, page)
        except _PASSING as exc:
            log.info("Page %s left streaming: Discord failed (%r)", page.id, exc)
            again.append(page)
            continue
        except discord.HTTPException as exc:  # deleted meanwhile, or no longer ours to edit
            log.warning("Page %s left streaming could not be finished: %s %s", page.id, exc.status, exc.code)
            continue
        except Exception:  # one page that fails in an unexpected way must not keep the others open
            log.exception("Page %s left streaming could not be finished", page.id)
            continue
        log.info("Closed page %s left streaming by a previous run", page.id)
    return again


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
