"""🛑 reactions, /stop and deletions: cancel generation at once."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import StreamcordBot
from bot.discord_targets import NO_MENTIONS, STOP_EMOJI
from bot.streaming.routes import route_key
from bot.streaming.stream import Status

log = logging.getLogger(__name__)


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
        if payload.user_id == stream.requester.user_id or self._moderates(member, payload.channel_id):
            self.bot.streams.stop(
                stream, Status.STOPPED, _stopped_by(member.display_name if member else "its author")
            )
        else:
            await self._remove_reaction(payload)

    def _moderates(self, member: discord.Member | None, channel_id: int) -> bool:
        channel = self.bot.get_channel(channel_id)
        if member is None or not isinstance(channel, discord.abc.GuildChannel):
            return False
        return channel.permissions_for(member).manage_messages

    async def _remove_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        channel = self.bot.get_channel(payload.channel_id)
        if (
            not isinstance(channel, discord.abc.GuildChannel)
            or not channel.permissions_for(channel.guild.me).manage_messages
        ):
            return
        message = self.bot.get_partial_messageable(payload.channel_id).get_partial_message(payload.message_id)
        message_path = f"/channels/{payload.channel_id}/messages/{payload.message_id}"
        path = f"{message_path}/reactions/{STOP_EMOJI}/{payload.user_id}"
        try:
            await self.bot.pacer.run(
                lambda: message.remove_reaction(STOP_EMOJI, discord.Object(payload.user_id)),
                channel_id=None,
                route=route_key("DELETE", path),
                uses_global=True,
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
            self.bot.streams.stop(stream, Status.STOPPED, "⏹ stopped: the question was deleted")

    @app_commands.command(
        name="stop", description="Stop your answer that is still being written in this channel."
    )
    async def stop(self, interaction: discord.Interaction) -> None:
        assert interaction.channel_id is not None
        stream = self.bot.streams.latest_for(interaction.channel_id, interaction.user.id)
        if stream is not None and self.bot.streams.stop(
            stream, Status.STOPPED, _stopped_by(interaction.user.display_name)
        ):
            text = "Stopped."
        else:
            text = "You have no answer being written in this channel."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


def _stopped_by(name: str) -> str:
    return f"⏹ stopped by {name}"


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Stop(bot))
