"""Continuing an answer cut off at the output limit, for the person who asked (a "continue" reply or ⏩):
the continuation streams as the next message of that answer."""

from __future__ import annotations

import logging
from collections.abc import Collection

import discord

from bot import paced
from bot.admission import Quiet, Refused
from bot.channels import settings_channel_id
from bot.client import StreamcordBot
from bot.discord_targets import ChannelTarget
from bot.streaming.continuation import CutOff, continue_request
from bot.streaming.options import AnswerOptions, Asked, Ready
from bot.streaming.stream import Requester

log = logging.getLogger(__name__)


async def continue_answer(
    bot: StreamcordBot, cut_off: CutOff, settings_channel_id: int, role_ids: Collection[int]
) -> None:
    """Start the continuation; admission's Refused propagates, and the answer stays continuable.
    ``role_ids``: the requester's roles now (access and role_quotas apply as to a new question)."""
    admitted = await bot.admission.check(cut_off.guild_id, settings_channel_id, cut_off.user_id, role_ids)
    bot.streams.start(
        question=Ready(Asked(continue_request(cut_off))),
        requester=Requester(cut_off.user_id, cut_off.guild_id, cut_off.channel_id),
        target=ChannelTarget(bot, cut_off.channel_id, reply_to=cut_off.message_ids[-1]),
        ticket=admitted.ticket,
        options=AnswerOptions(reasoning=admitted.settings.reasoning),
        continues=cut_off.record,
    )
    bot.streams.cut_offs.forget(cut_off)
    log.info("Continuing a cut-off answer in channel %s for user %s", cut_off.channel_id, cut_off.user_id)


async def try_continue(
    bot: StreamcordBot,
    *,
    message_id: int,
    user_id: int,
    role_ids: Collection[int],
    channel: discord.abc.Snowflake,
    answer_to: discord.Message | discord.PartialMessage,
) -> bool:
    """Continue the cut-off answer ``message_id`` belongs to if ``user_id`` asked it; False when there is
    none. A refusal (cooldown, quota) is answered on ``answer_to``."""
    cut_off = bot.streams.cut_offs.find(message_id, user_id)
    if cut_off is None:
        return False
    try:
        await continue_answer(bot, cut_off, settings_channel_id(channel), role_ids)
    except Quiet as refusal:  # a switched-off channel, or a requester without access now, stays quiet
        log.info(
            "Not continuing for user %s in channel %s: %s",
            user_id,
            cut_off.channel_id,
            type(refusal).__name__,
        )
    except Refused as refusal:
        try:
            await paced.reply(bot.pacer, answer_to, str(refusal))
        except discord.HTTPException as exc:
            log.warning("Could not answer a continue request: %s %s", exc.status, exc.code)
    return True
