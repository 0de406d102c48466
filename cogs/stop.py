"""🛑 reactions, /stop and deletions: cancel generation at once."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import paced
from bot.client import StreamcordBot
from bot.discord_targets import NO_MENTIONS, STOP_EMOJI
from bot.status import QUESTION_DELETED, Status, stopped_by

log = logging.getLogger(__name__)

# Threads are not discord.abc.GuildChannel, but have permissions_for too.
ServerChannel = discord.abc.GuildChannel | discord.Thread


class Stop(commands.Cog):
    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if str(payload.emoji) != STOP_EMOJI or self.bot.user is None or payload.user_id == self.bot.user.id:
            return
        stream = self.bot.streams.by_message(payload.message_id)
        if stream is None:
            return  # a finished reply: nothing to stop
        member = payload.member
        channel = self._channel(payload)
        if payload.user_id == stream.requester.user_id or _moderates(member, channel):
            self.bot.streams.stop(
                stream, Status.STOPPED, stopped_by(member.display_name if member else "its author")
            )
        elif channel is not None and channel.permissions_for(channel.guild.me).manage_messages:
            await self._remove_reaction(payload)

    def _channel(self, payload: discord.RawReactionActionEvent) -> ServerChannel | None:
        """The channel or thread reacted in; None in direct messages or when it isn't cached."""
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id is not None else None
        return guild.get_channel_or_thread(payload.channel_id) if guild is not None else None

    async def _remove_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        try:
            await paced.remove_reaction(
                self.bot, self.bot.pacer, payload.channel_id, payload.message_id, STOP_EMOJI, payload.user_id
            )
        except discord.HTTPException as exc:
            log.info("Could not remove a stray stop reaction: %s %s", exc.status, exc.code)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        stream = self.bot.streams.by_message(payload.message_id)
        if stream is None:
            return
        if payload.message_id in stream.message_ids:
            self.bot.streams.stop(stream, Status.STOPPED, "", reply_gone=True)
        else:
            self.bot.streams.stop(stream, Status.STOPPED, QUESTION_DELETED)

    @app_commands.command(
        name="stop", description="Stop your answer that is still being written in this channel."
    )
    @app_commands.guild_only()  # answers are only written in servers
    async def stop(self, interaction: discord.Interaction) -> None:
        channel_id = interaction.channel_id
        stream = self.bot.streams.latest_for(channel_id, interaction.user.id) if channel_id else None
        if stream is not None and self.bot.streams.stop(
            stream, Status.STOPPED, stopped_by(interaction.user.display_name)
        ):
            text = "Stopped."
        else:
            text = "You have no answer being written in this channel."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


def _moderates(member: discord.Member | None, channel: ServerChannel | None) -> bool:
    return member is not None and channel is not None and channel.permissions_for(member).manage_messages


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Stop(bot))
