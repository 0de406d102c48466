"""REST routes of interactions: the callback (ack within `ack_deadline`) and the interaction webhook
(followups, the original response) whose token lives `token_ttl` seconds."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from fakes.discord.errors import (
    ApiError,
    has_other_content,
    invalid_form_body,
    unknown_interaction,
    unknown_message,
    validate_message,
)
from fakes.discord.messages import TYPE_CHAT_INPUT_COMMAND, TYPE_DEFAULT, Messages
from fakes.discord.model import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTERACTION_COMPONENT,
    FakeInteraction,
    FakeMessage,
)
from fakes.discord.payloads import Payloads
from fakes.discord.rest import Route
from fakes.discord.state import State

# Interaction callback types (https://discord.com/developers/docs/interactions/receiving-and-responding).
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE, MODAL = 1, 4, 5, 6, 7, 8, 9
_WEBHOOK_MESSAGE = "/webhooks/{application_id}/{token}/messages/{message_id}"


def _truthy(value: str | None) -> bool:
    return value in ("1", "true", "True")


class InteractionRoutes:
    def __init__(
        self, state: State, payloads: Payloads, messages: Messages, *, ack_deadline: float, token_ttl: float
    ) -> None:
        self._state = state
        self._payloads = payloads
        self._messages = messages
        self.ack_deadline = ack_deadline
        self.token_ttl = token_ttl

    def routes(self) -> list[Route]:
        return [
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            ("POST", "/webhooks/{application_id}/{token}", self.webhook_execute),
            ("GET", _WEBHOOK_MESSAGE, self.webhook_get_message),
            ("PATCH", _WEBHOOK_MESSAGE, self.webhook_edit_message),
            ("DELETE", _WEBHOOK_MESSAGE, self.webhook_delete_message),
        ]

    async def interaction_callback(
        self, request: web.Request, body: Any, interaction_id: str, token: str
    ) -> Any:
        state = self._state
        inter = state.interactions.get(int(interaction_id)) if interaction_id.isdigit() else None
        now = time.monotonic()
        if (
            inter is None
            or inter.token != token
            or inter.responded_at is not None
            or now - inter.created_at > self.ack_deadline
        ):
            raise unknown_interaction()
        rtype = int(body["type"])
        data = body.get("data") or {}
        msg: FakeMessage | None = None
        if rtype == MESSAGE:
            content, embeds = data.get("content") or "", data.get("embeds") or []
            validate_message(content, embeds, prefix="data", empty_ok=has_other_content(data))
            flags = int(data.get("flags") or 0) & ~FLAG_LOADING
            msg = self._reply(
                inter, content, embeds, data.get("allowed_mentions"), flags, TYPE_CHAT_INPUT_COMMAND, data
            )
        elif rtype == DEFERRED_MESSAGE:
            flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
            msg = self._reply(inter, "", [], None, flags, TYPE_CHAT_INPUT_COMMAND)
        elif rtype == AUTOCOMPLETE:
            inter.choices = list(data.get("choices") or [])
        elif rtype == UPDATE_MESSAGE:
            # A component's interaction edits the message the component is on.
            if inter.type != INTERACTION_COMPONENT or inter.message_id is None:
                raise ApiError(400, 40004, "Interaction has no message to update")
            self._messages.edit(state.messages[inter.message_id], data)
        elif rtype not in (PONG, DEFERRED_UPDATE, MODAL):
            raise invalid_form_body("type", "BASE_TYPE_CHOICES", "Invalid type")
        inter.response_type, inter.response_data, inter.responded_at = rtype, data, now
        if msg is not None:
            inter.message_id = msg.id
        if not _truthy(request.query.get("with_response")):
            return None
        resource: dict[str, Any] = {"type": rtype}
        if msg is not None:
            resource["message"] = self._payloads.message(msg)
        return {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "activity_instance_id": None,
                "response_message_id": str(msg.id) if msg else None,
                "response_message_loading": rtype == DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(msg and msg.ephemeral),
            },
            "resource": resource,
        }

    def _reply(
        self,
        inter: FakeInteraction,
        content: str,
        embeds: list[Any],
        allowed_mentions: dict[str, Any] | None,
        flags: int,
        type_: int,
        body: dict[str, Any] | None = None,
    ) -> FakeMessage:
        """A message the bot sends for an interaction, through its webhook, in its channel."""
        return self._messages.create(
            self._state.channel(inter.channel_id),
            self._state.bot_user_id,
            content,
            embeds,
            allowed_mentions=allowed_mentions,
            flags=flags,
            interaction_id=inter.id,
            webhook=True,
            type_=type_,
            body=body,
        )

    # ----------------------------------------------------------------------------------- webhook

    def _interaction(self, application_id: str, token: str) -> FakeInteraction:
        inter = self._state.interactions_by_token.get(token)
        if application_id != str(self._state.application_id) or inter is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - inter.created_at > self.token_ttl:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _message(self, application_id: str, token: str, message_id: str) -> FakeMessage:
        """The interaction's own message: "@original" or one of its followups."""
        inter = self._interaction(application_id, token)
        mid = inter.message_id if message_id == "@original" else int(message_id)
        msg = self._state.messages.get(mid) if mid is not None else None
        if msg is None or msg.interaction_id != inter.id or msg.deleted_at is not None:
            raise unknown_message()
        return msg

    async def webhook_execute(self, request: web.Request, body: Any, application_id: str, token: str) -> Any:
        state = self._state
        inter = self._interaction(application_id, token)
        if inter.responded_at is None:
            raise ApiError(404, 10015, "Unknown Webhook")  # followups need an acknowledged interaction
        body = body or {}
        content, embeds = body.get("content") or "", body.get("embeds") or []
        validate_message(content, embeds, empty_ok=has_other_content(body))
        original = state.messages.get(inter.message_id) if inter.message_id else None
        if (
            original is not None
            and original.flags & FLAG_LOADING
            and len(original.versions) == 1
            and original.deleted_at is None
        ):
            # Discord turns the first followup after a "thinking" defer into the deferred message itself.
            self._messages.edit(original, body, clear_loading=True)
            msg = original
        else:
            flags = int(body.get("flags") or 0) & ~FLAG_LOADING
            msg = self._reply(inter, content, embeds, body.get("allowed_mentions"), flags, TYPE_DEFAULT, body)
            inter.followup_ids.append(msg.id)
        return self._payloads.message(msg) if _truthy(request.query.get("wait")) else None

    async def webhook_get_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        return self._payloads.message(self._message(application_id, token, message_id))

    async def webhook_edit_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        msg = self._message(application_id, token, message_id)
        self._messages.edit(msg, body or {}, clear_loading=True)
        return self._payloads.message(msg)

    async def webhook_delete_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        self._messages.delete(self._message(application_id, token, message_id))
        return None
