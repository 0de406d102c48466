"""/chat and mentions: turn a Discord request into a streamed answer."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import paced
from bot.admission import Quiet, Refused
from bot.attachments import AttachmentInfo
from bot.channels import settings_channel_id
from bot.client import StreamcordBot
from bot.continuing import try_continue
from bot.conversation import Turn, build_request, shown_answer
from bot.discord_targets import NO_MENTIONS, ChannelTarget, InteractionTarget
from bot.question import prepare_question
from bot.streaming.continuation import is_continue
from bot.streaming.stream import Requester

log = logging.getLogger(__name__)


class Chat(commands.Cog):
    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="chat", description="Ask the model; the answer streams in as it is written.")
    @app_commands.describe(prompt="What to ask", file="A text file or an image for the model to read")
    @app_commands.guild_only()  # cooldowns, quotas and the on/off switch are per server
    async def chat(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        file: discord.Attachment | None = None,
    ) -> None:
        guild_id, channel = interaction.guild_id, interaction.channel
        if guild_id is None or channel is None:
            # Discord enforces guild_only, but a registration from before it was added may still be used.
            raise app_commands.NoPrivateMessage
        try:
            admitted = await self.bot.admission.check(
                guild_id, settings_channel_id(channel), interaction.user.id, _role_ids(interaction.user)
            )
            with admitted.ticket.until_started():
                content, options = await prepare_question(
                    self.bot.attachments, prompt, _attachments([file] if file else []), admitted.settings
                )
            self.bot.streams.start(
                chat=build_request(admitted.settings, content),
                requester=Requester(interaction.user.id, guild_id, channel.id),
                target=InteractionTarget(interaction),
                ticket=admitted.ticket,
                options=options,
            )
        except Refused as refusal:
            try:
                await interaction.response.send_message(
                    str(refusal), ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            except discord.HTTPException as exc:  # too late (a slow check): the interaction expired
                log.warning(
                    "Could not refuse /chat for user %s: %s %s", interaction.user.id, exc.status, exc.code
                )

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        # Direct messages have no server to switch the bot off or to count cooldowns and quotas against.
        if me is None or message.guild is None or message.author.bot or not self._addressed(message, me):
            return
        prompt = message.content.replace(f"<@{me.id}>", "").replace(f"<@!{me.id}>", "").strip()
        if not prompt and not message.attachments:
            return
        reference = message.reference
        if is_continue(prompt) and reference is not None and reference.message_id is not None:
            answer = reference.message_id
            if await try_continue(
                self.bot,
                message_id=answer,
                user_id=message.author.id,
                channel=message.channel,
                answer_to=message,
            ):
                return
        guild_id = message.guild.id
        try:
            admitted = await self.bot.admission.check(
                guild_id, settings_channel_id(message.channel), message.author.id, _role_ids(message.author)
            )
        except Quiet:
            return  # a switched-off channel, or someone without access here, gets no answer to a mention
        except Refused as refusal:
            await self._reply(message, str(refusal))
            return
        with admitted.ticket.until_started():
            history = await self._history(message, me, admitted.settings.history)
            content, options = await prepare_question(
                self.bot.attachments, prompt, _attachments(message.attachments), admitted.settings
            )
        try:
            self.bot.streams.start(
                chat=build_request(admitted.settings, content, history),
                requester=Requester(message.author.id, guild_id, message.channel.id),
                target=ChannelTarget(self.bot, message.channel.id, reply_to=message.id),
                ticket=admitted.ticket,
                prompt_message_id=message.id,
                options=options,
            )
        except Refused as refusal:  # shutdown began meanwhile
            await self._reply(message, str(refusal))

    @staticmethod
    def _addressed(message: discord.Message, me: discord.ClientUser) -> bool:
        if me in message.mentions:
            return True
        replied = message.reference.resolved if message.reference else None
        return isinstance(replied, discord.Message) and replied.author.id == me.id

    async def _history(self, message: discord.Message, me: discord.ClientUser, limit: int) -> list[Turn]:
        """Earlier turns of the reply chain this message continues, oldest first."""
        turns: list[Turn] = []
        reference = message.reference
        while reference is not None and reference.message_id is not None and len(turns) < limit:
            previous = reference.resolved
            if not isinstance(previous, discord.Message):
                try:
                    previous = await paced.fetch_message(
                        self.bot, self.bot.pacer, message.channel.id, reference.message_id
                    )
                except discord.HTTPException:
                    break
            if previous.author.id == me.id:
                turns.append(Turn("assistant", shown_answer(previous.content)))
            else:
                turns.append(Turn("user", previous.content.replace(f"<@{me.id}>", "").strip()))
            if not turns[-1].content:
                turns.pop()
            reference = previous.reference
        return turns[::-1]

    async def _reply(self, message: discord.Message, text: str) -> None:
        try:
            await paced.reply(self.bot.pacer, message, text)
        except discord.HTTPException as exc:
            log.warning("Could not answer message %s: %s %s", message.id, exc.status, exc.code)


def _attachments(attachments: list[discord.Attachment]) -> list[AttachmentInfo]:
    return [AttachmentInfo(a.id, a.filename, a.size, a.content_type, a.url) for a in attachments]


def _role_ids(user: discord.User | discord.Member) -> list[int]:
    return [role.id for role in user.roles] if isinstance(user, discord.Member) else []


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Chat(bot))
