"""⏩ on an answer cut off at the output limit: its requester continues it."""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.channels import role_ids
from bot.client import StreamcordBot
from bot.continuing import try_continue
from bot.streaming.continuation import CONTINUE_EMOJI


class Continuation(commands.Cog):
    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if str(payload.emoji) != CONTINUE_EMOJI or payload.guild_id is None:
            return
        guild = self.bot.get_guild(payload.guild_id)
        channel = guild.get_channel_or_thread(payload.channel_id) if guild is not None else None
        if channel is None:
            return
        await try_continue(
            self.bot,
            message_id=payload.message_id,
            user_id=payload.user_id,
            role_ids=role_ids(payload.member),
            channel=channel,
            answer_to=self.bot.get_partial_messageable(payload.channel_id).get_partial_message(
                payload.message_id
            ),
        )


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Continuation(bot))
