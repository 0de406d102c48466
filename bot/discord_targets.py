"""The two ways a reply reaches Discord, behind the engine's ReplyTarget: an interaction (/chat) and plain
channel messages (mentions, and /chat replies that outlive their 15-minute interaction token)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from typing import Any, Literal

import aiohttp
import discord
from discord.http import MultipartParameters, handle_message_parameters
from discord.webhook.async_ import async_context

from bot.streaming.routes import Route
from bot.streaming.target import (
    PLACEHOLDER_AFTER,
    DeliveryBlocked,
    DeliveryFailed,
    DeliveryRetry,
    FileUpload,
    MessageGone,
    TargetExpired,
)

NO_MENTIONS = discord.AllowedMentions.none()
STOP_EMOJI = "🛑"
# Interaction tokens live 15 minutes; leave a margin for a request in flight.
TOKEN_LIFETIME = 14 * 60.0

_GONE = {10003, 10008}  # unknown channel, unknown message
# Missing access, missing permissions, thread archived, replying needs Read Message History, thread locked.
_BLOCKED = {50001, 50013, 50083, 160002, 160005}
_EXPIRED = {10015, 10062, 50027}  # unknown webhook, unknown interaction, invalid webhook token


@contextlib.contextmanager
def _engine_errors(*, expirable: bool) -> Iterator[None]:
    """Discord's failures as the engine's exceptions."""
    try:
        yield
    except discord.HTTPException as exc:
        detail = f"{exc.status} {exc.code}"
        if exc.code in _GONE:
            raise MessageGone(detail) from exc
        if exc.code in _BLOCKED or isinstance(exc, discord.Forbidden):
            raise DeliveryBlocked(detail) from exc
        if expirable and (exc.code in _EXPIRED or exc.status == 401):
            raise TargetExpired(detail) from exc
        if exc.status >= 500 or exc.status == 429:  # discord.py already retried these; they pass
            raise DeliveryRetry(detail) from exc
        raise DeliveryFailed(f"{detail} {exc.text[:200]}") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryRetry(repr(exc)) from exc


def _send_files(file: FileUpload | None) -> dict[str, Any]:
    return {} if file is None else {"file": discord.File(io.BytesIO(file.data), filename=file.filename)}


def _edit_files(file: FileUpload | None) -> dict[str, Any]:
    return (
        {} if file is None else {"attachments": [discord.File(io.BytesIO(file.data), filename=file.filename)]}
    )


# discord.py's edit methods build a Message from every response: author, reactions, flags, objects that refer
# to one another and so wait for the garbage collector, a few kilobytes each at an edit per answer per second.
# The bot reads none of it: these send the same requests through discord.py's clients and drop the response.


def _edit_parameters(content: str, file: FileUpload | None) -> MultipartParameters:
    return handle_message_parameters(content=content, allowed_mentions=NO_MENTIONS, **_edit_files(file))


async def _edit_channel_message(
    client: discord.Client, channel_id: int, message_id: int, content: str, file: FileUpload | None
) -> None:
    with _edit_parameters(content, file) as params:
        await client.http.edit_message(channel_id, message_id, params=params)


async def _edit_interaction_message(
    interaction: discord.Interaction, message_id: int | None, content: str, file: FileUpload | None
) -> None:
    """Edit a message of the interaction's webhook: its original response when ``message_id`` is None."""
    webhook, adapter = interaction.followup, async_context.get()
    with _edit_parameters(content, file) as params:
        request: dict[str, Any] = {
            "session": webhook.session,
            "proxy": webhook.proxy,
            "proxy_auth": webhook.proxy_auth,
            "payload": params.payload,
            "multipart": params.multipart,
            "files": params.files,
        }
        application_id, token = interaction.application_id, interaction.token
        if message_id is None:
            await adapter.edit_original_interaction_response(application_id, token, **request)
        else:
            await adapter.edit_webhook_message(application_id, token, message_id, **request)


class ChannelTarget:
    """Pages as ordinary channel messages, the first one replying to the prompt when there is one."""

    answer_deadline = False

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        *,
        reply_to: int | None = None,
        message_ids: list[int] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.message_ids = message_ids if message_ids is not None else []
        self._client = client
        self._channel = client.get_partial_messageable(channel_id)
        self._reply_to = reply_to

    def route(self, page: int) -> Route:
        if page >= len(self.message_ids):
            return Route.create_message(self.channel_id)
        return Route.edit_message(self.channel_id, self.message_ids[page])

    async def put(self, page: int, content: str, file: FileUpload | None = None) -> None:
        with _engine_errors(expirable=False):
            if page < len(self.message_ids):
                await _edit_channel_message(
                    self._client, self.channel_id, self.message_ids[page], content, file
                )
                return
            extra = _send_files(file)
            if page == 0 and self._reply_to is not None:
                # Only when there is one: send() refuses MISSING, and None does not type-check.
                extra["reference"] = discord.MessageReference(
                    message_id=self._reply_to, channel_id=self.channel_id, fail_if_not_exists=False
                )
            message = await self._channel.send(content, allowed_mentions=NO_MENTIONS, **extra)
            self.message_ids.append(message.id)

    def reaction_route(self, shown: bool) -> Route:
        message_id = self.message_ids[0] if self.message_ids else 0
        if shown:
            return Route.reaction_add(self.channel_id, message_id, STOP_EMOJI)
        return Route.reaction_remove(self.channel_id, message_id, STOP_EMOJI)

    async def set_stop_button(self, shown: bool) -> None:
        message = self._channel.get_partial_message(self.message_ids[0])
        if shown:
            await message.add_reaction(STOP_EMOJI)
        else:
            await message.remove_reaction(STOP_EMOJI, discord.Object(self._client.user.id))  # type: ignore[union-attr]

    def note_route(self) -> Route:
        return Route.create_message(self.channel_id)

    async def note(self, text: str) -> None:
        await self._channel.send(text, allowed_mentions=NO_MENTIONS)

    def placeholder_delay(self) -> float:
        return PLACEHOLDER_AFTER

    def fall_back(self) -> None:
        """Channel messages have no token to expire."""


class InteractionTarget:
    """The first page is the interaction's own response; later pages are follow-ups, all edited through the
    interaction webhook, which Discord exempts from the global rate limit. An ephemeral (private) answer has
    no stop button (ephemeral messages take no reactions; /stop works) and ends with its token."""

    answer_deadline = True

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool = False) -> None:
        self.channel_id: int = interaction.channel_id  # type: ignore[assignment]
        self._interaction = interaction
        self._channel = ChannelTarget(interaction.client, self.channel_id)
        self.message_ids = self._channel.message_ids
        self._expires_at = time.monotonic() + TOKEN_LIFETIME
        self._expired = False
        self._ephemeral = ephemeral

    def placeholder_delay(self) -> float:
        # Counted from when Discord created the interaction: a busy bot may see it late.
        age = (discord.utils.utcnow() - self._interaction.created_at).total_seconds()
        return max(0.0, PLACEHOLDER_AFTER - max(0.0, age))

    def _use_channel(self) -> bool:
        self._expired = self._expired or time.monotonic() >= self._expires_at
        return self._expired

    def route(self, page: int) -> Route:
        if self._use_channel():
            return self._channel.route(page)
        interaction = self._interaction
        if not self.message_ids:
            return Route.interaction_callback(interaction.id, interaction.token)
        application_id = interaction.application_id
        if page >= len(self.message_ids):
            return Route.webhook_create(application_id, interaction.token, channel_id=self.channel_id)
        message: int | Literal["@original"] = "@original" if page == 0 else self.message_ids[page]
        return Route.webhook_edit(application_id, interaction.token, message, channel_id=self.channel_id)

    async def put(self, page: int, content: str, file: FileUpload | None = None) -> None:
        if self._use_channel():
            if self._ephemeral:  # channel messages would show a private answer to everyone
                raise MessageGone("the private answer's interaction token expired")
            await self._channel.put(page, content, file)
            return
        interaction = self._interaction
        with _engine_errors(expirable=True):
            if not self.message_ids:
                response = await interaction.response.send_message(
                    content, allowed_mentions=NO_MENTIONS, ephemeral=self._ephemeral, **_send_files(file)
                )
                if response.message_id is None:
                    raise DeliveryFailed("the interaction response carried no message id")
                self.message_ids.append(response.message_id)
            elif page < len(self.message_ids):
                await _edit_interaction_message(
                    interaction, self.message_ids[page] if page else None, content, file
                )
            else:
                message = await interaction.followup.send(
                    content,
                    wait=True,
                    allowed_mentions=NO_MENTIONS,
                    ephemeral=self._ephemeral,
                    **_send_files(file),
                )
                self.message_ids.append(message.id)

    def reaction_route(self, shown: bool) -> Route:
        return self._channel.reaction_route(shown)

    async def set_stop_button(self, shown: bool) -> None:
        if not self._ephemeral:
            await self._channel.set_stop_button(shown)

    def note_route(self) -> Route:
        if self._use_channel() or not self.message_ids:
            return self._channel.note_route()
        interaction = self._interaction
        return Route.webhook_create(interaction.application_id, interaction.token, channel_id=self.channel_id)

    async def note(self, text: str) -> None:
        """To the requester alone, through the interaction webhook, which needs no channel permission."""
        if self._use_channel() or not self.message_ids:
            await self._channel.note(text)
            return
        await self._interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def fall_back(self) -> None:
        self._expired = True
