"""/chat, mentions, replies, the bot's threads and direct messages: turn a Discord request into a streamed
answer with the conversation behind it."""

from __future__ import annotations

import functools
import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot import paced
from bot.admission import Quiet, Refused
from bot.attachments import AttachmentInfo
from bot.channels import role_ids, settings_channel_id
from bot.client import StreamcordBot
from bot.continuing import try_continue
from bot.conversation import without_mention
from bot.discord_history import attachment_infos
from bot.discord_targets import NO_MENTIONS, ChannelTarget, InteractionTarget
from bot.llm import models_within
from bot.question import EMPTY_PROMPT, Asking, Conversation
from bot.reservations import Ticket
from bot.settings import ChannelSettings
from bot.store.answers import AnswerOrigin
from bot.streaming.continuation import is_continue
from bot.streaming.options import AnswerOptions
from bot.streaming.stream import Requester
from cogs.config import AUTOCOMPLETE_TIMEOUT

log = logging.getLogger(__name__)

THREAD_NAME_MAX = 100  # Discord's limit
NO_CONTENT_INTENT = (
    "I only see messages here that mention me or reply to me: this bot runs without Discord's Message "
    "Content intent. Mention me (or reply to my answer) to continue the conversation."
)
MODEL_NOT_ALLOWED = "Only the people a server admin lists in `user_models` may pick a model."
THREAD_FAILED = "I couldn't open a thread here. Ask a server admin to let me create public threads."
MESSAGE_FAILED = "Something went wrong while answering this. Try again in a moment."


def thread_name(prompt: str) -> str:
    """A thread title from the prompt's first words."""
    name = re.sub(r"\s+", " ", prompt).strip()
    return name[: THREAD_NAME_MAX - 1] + "…" if len(name) > THREAD_NAME_MAX else name or "Conversation"


class Chat(commands.Cog):
    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot
        self._explained: set[int] = set()  # threads told why plain messages go unanswered (once a process)

    @app_commands.command(name="chat", description="Ask the model; the answer streams in as it is written.")
    @app_commands.describe(
        prompt="What to ask",
        thread="Answer in a new thread (default: the channel's reply_in_thread setting)",
        model="A model to use instead of this channel's (if a server admin allows you)",
        private="Only you see the answer",
        file="A text file or an image for the model to read",
    )
    @app_commands.guild_only()  # cooldowns, quotas and the on/off switch are per server
    async def chat(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        thread: bool | None = None,
        model: str | None = None,
        private: bool = False,
        file: discord.Attachment | None = None,
    ) -> None:
        guild_id, channel = interaction.guild_id, interaction.channel
        if guild_id is None or channel is None:
            # Discord enforces guild_only, but a registration from before it was added may still be used.
            raise app_commands.NoPrivateMessage
        user = interaction.user
        try:
            admitted = await self.bot.admission.check(
                guild_id, settings_channel_id(channel), user.id, role_ids(user)
            )
            settings, ticket = admitted.settings, admitted.ticket
            with ticket.until_started():
                chosen = await self._chosen_model(interaction, settings, model)
                # The file is downloaded inside the answer (which holds the ticket), after its placeholder
                # has answered the interaction.
                attached = tuple(attachment_infos([file] if file else []))
                question = self._asking(settings, prompt, user.display_name, attached, chosen_model=chosen)
        except Refused as refusal:
            await _refuse(interaction, str(refusal))
            return
        origin = AnswerOrigin(guild_id, channel.id, user.id, user.display_name, prompt_text=prompt)
        in_thread = settings.reply_in_thread if thread is None else thread
        try:
            if private:
                target = InteractionTarget(interaction, ephemeral=True)
                self._start(question, Requester(user.id, guild_id, channel.id), target, None, ticket)
            elif in_thread and isinstance(channel, discord.TextChannel):
                with ticket.until_started():
                    await self._start_in_thread(interaction, channel, question, origin, ticket)
            else:
                target = InteractionTarget(interaction)
                self._start(question, Requester(user.id, guild_id, channel.id), target, origin, ticket)
        except Refused as refusal:  # shutdown began meanwhile
            await _refuse(interaction, str(refusal))

    @chat.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None or interaction.channel is None:
            return []
        settings = await self.bot.settings.get(
            interaction.guild_id, settings_channel_id(interaction.channel), self.bot.config.defaults
        )
        if not self._may_pick(interaction, settings):
            return []
        needle = current.strip().lower()
        models = await models_within(self.bot.llm, AUTOCOMPLETE_TIMEOUT)
        return [app_commands.Choice(name=m[:100], value=m[:100]) for m in models if needle in m.lower()][:25]

    @staticmethod
    def _may_pick(interaction: discord.Interaction, settings: ChannelSettings) -> bool:
        return interaction.user.id in settings.user_models or interaction.permissions.manage_guild

    async def _chosen_model(
        self, interaction: discord.Interaction, settings: ChannelSettings, model: str | None
    ) -> str | None:
        if model is None:
            return None
        if not self._may_pick(interaction, settings):
            raise Refused(MODEL_NOT_ALLOWED)
        models = await models_within(self.bot.llm, AUTOCOMPLETE_TIMEOUT)
        if models and model not in models:
            raise Refused(f"The model server has no model `{model[:100]}`.")
        return model

    def _asking(
        self,
        settings: ChannelSettings,
        prompt: str,
        speaker: str,
        attachments: tuple[AttachmentInfo, ...],
        conversation: Conversation | None = None,
        chosen_model: str | None = None,
    ) -> Asking:
        fetcher = self.bot.attachments
        return Asking(settings, prompt, speaker, fetcher, attachments, conversation, chosen_model)

    async def _start_in_thread(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        question: Asking,
        origin: AnswerOrigin,
        ticket: Ticket,
    ) -> None:
        """Answer the interaction with the thread's title, open a thread from that message, and stream the
        answer into it as channel messages (the thread's conversation continues without mentions)."""
        assert origin.prompt_text is not None
        name = thread_name(origin.prompt_text)
        try:
            message_id = await paced.respond(self.bot.pacer, interaction, f"🧵 {name}")
            if message_id is None:
                raise RuntimeError("the interaction response carried no message id")
            thread = await paced.create_thread(self.bot.pacer, channel, message_id, name)
        except (discord.HTTPException, RuntimeError) as exc:
            log.warning("Could not open a thread in channel %s: %r", origin.channel_id, exc)
            ticket.release()
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    THREAD_FAILED, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            return
        origin = AnswerOrigin(
            origin.guild_id, thread.id, origin.author_id, origin.author_name, prompt_text=origin.prompt_text
        )
        requester = Requester(origin.author_id, origin.guild_id, thread.id)
        self._start(question, requester, ChannelTarget(self.bot, thread.id), origin, ticket)

    def _start(
        self,
        question: Asking,
        requester: Requester,
        target: ChannelTarget | InteractionTarget,
        origin: AnswerOrigin | None,
        ticket: Ticket,
        prompt_message_id: int | None = None,
    ) -> None:
        """Refused once shutdown began (the ticket is released)."""
        self.bot.streams.start(
            question=question,
            requester=requester,
            target=target,
            ticket=ticket,
            options=AnswerOptions(reasoning=question.settings.reasoning),
            origin=origin,
            prompt_message_id=prompt_message_id,
        )

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot:
            return
        addressed = self._addressed(message, me)
        channel = message.channel
        # In direct messages and the threads the bot opened, the conversation is the latest messages there.
        whole_channel = message.guild is None or (
            isinstance(channel, discord.Thread) and channel.owner_id == me.id
        )
        if message.guild is None and not self.bot.config.allow_dms:
            return
        if not (addressed or whole_channel):
            return
        if not addressed and message.guild is not None and not self.bot.config.message_content_intent:
            await self._explain_once(message)
            return
        try:
            await self._answer(message, me, whole_channel=whole_channel)
        except Exception as exc:
            if self.bot.admission.closing:  # the HTTP session may be closing under it
                log.info("Message %s not answered: the bot is shutting down (%r)", message.id, exc)
                return
            # discord.py would only log it: the person who asked is told too.
            log.exception("Message %s in channel %s could not be answered", message.id, message.channel.id)
            await self._reply(message, MESSAGE_FAILED)

    async def _answer(self, message: discord.Message, me: discord.ClientUser, *, whole_channel: bool) -> None:
        """Answer a message addressed to the bot (or in a conversation it keeps): continue a cut-off answer,
        or start one with the conversation behind it."""
        channel = message.channel
        prompt = without_mention(message.content, me.id)
        reference = message.reference.message_id if message.reference else None
        if is_continue(prompt) and reference is not None:
            if await try_continue(
                self.bot,
                message_id=reference,
                user_id=message.author.id,
                role_ids=role_ids(message.author),
                channel=channel,
                answer_to=message,
            ):
                return
        guild_id = message.guild.id if message.guild is not None else None
        author = message.author
        try:
            if not prompt and not message.attachments:
                raise Refused(EMPTY_PROMPT)
            admitted = await self.bot.admission.check(
                guild_id, settings_channel_id(channel), author.id, role_ids(author)
            )
            settings = admitted.settings
            with admitted.ticket.until_started():
                # The conversation and the files are read inside the answer (which holds the ticket), its
                # placeholder showing meanwhile.
                conversation: Conversation | None = None
                history = self.bot.history
                if whole_channel:
                    conversation = functools.partial(history.recent, channel.id, message.id, settings.history)
                elif reference is not None:
                    conversation = functools.partial(history.chain, channel.id, reference, settings.history)
                attached = tuple(attachment_infos(message.attachments))
                question = self._asking(settings, prompt, author.display_name, attached, conversation)
        except Quiet as refusal:  # a switched-off channel, or someone without access here, gets no answer
            log.info("Not answering user %s in channel %s: %s", author.id, channel.id, type(refusal).__name__)
            return
        except Refused as refusal:
            await self._reply(message, str(refusal))
            return
        try:
            self._start(
                question,
                Requester(author.id, guild_id, channel.id),
                ChannelTarget(self.bot, channel.id, reply_to=message.id),
                AnswerOrigin(
                    guild_id, channel.id, author.id, author.display_name, prompt_message_id=message.id
                ),
                admitted.ticket,
                prompt_message_id=message.id,
            )
        except Refused as refusal:  # shutdown began meanwhile
            await self._reply(message, str(refusal))

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.bot.history.forget(payload.message_id)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.bot.history.forget(payload.message_id)

    @staticmethod
    def _addressed(message: discord.Message, me: discord.ClientUser) -> bool:
        if me in message.mentions:
            return True
        replied = message.reference.resolved if message.reference else None
        return isinstance(replied, discord.Message) and replied.author.id == me.id

    async def _explain_once(self, message: discord.Message) -> None:
        if message.channel.id in self._explained:
            return
        self._explained.add(message.channel.id)
        await self._reply(message, NO_CONTENT_INTENT)

    async def _reply(self, message: discord.Message, text: str) -> None:
        try:
            with self.bot.unless_closing(f"The answer to message {message.id}"):
                await paced.reply(self.bot.pacer, message, text)
        except discord.HTTPException as exc:
            log.warning("Could not answer message %s: %s %s", message.id, exc.status, exc.code)


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Chat(bot))


async def _refuse(interaction: discord.Interaction, text: str) -> None:
    """Tell the requester why not, ephemerally; a slow check may find the interaction expired."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as exc:
        log.warning("Could not refuse /chat for user %s: %s %s", interaction.user.id, exc.status, exc.code)
