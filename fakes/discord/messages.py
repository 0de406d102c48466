"""Messages and their history: create, edit (each edit a new version), delete, reactions, mentions.

Users act through the public methods (post, react, delete); REST handlers call the same operations for the
bot. Every change is dispatched to the gateway and wakes the tests waiting on it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fakes.discord import payloads
from fakes.discord.changes import Changes
from fakes.discord.errors import has_other_content, unknown_message, validate_message
from fakes.discord.model import (
    CHANNEL_DM,
    DIRECT_MESSAGE_REACTIONS_INTENT,
    DIRECT_MESSAGES_INTENT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    Channel,
    FakeAttachment,
    FakeMessage,
    MessageVersion,
)

_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")
TYPE_DEFAULT, TYPE_REPLY, TYPE_CHAT_INPUT_COMMAND = 0, 19, 20


class Messages(Changes):
    # ----------------------------------------------------------------------------------- acting as users

    def post(
        self,
        channel_id: int,
        user_id: int,
        content: str,
        *,
        reply_to: int | None = None,
        attachments: list[FakeAttachment] | None = None,
    ) -> int:
        channel = self.state.channel(channel_id)
        if channel.type == CHANNEL_DM and user_id != channel.recipient_id:
            raise ValueError(f"user {user_id} is not in DM channel {channel_id}")
        if reply_to is not None:
            self.state.message_in(channel_id, reply_to)
        msg = self.create(
            channel,
            user_id,
            content,
            [],
            allowed_mentions=None,
            reference_id=reply_to,
            type_=TYPE_REPLY if reply_to is not None else TYPE_DEFAULT,
            attachments=attachments,
        )
        return msg.id

    # ----------------------------------------------------------------------------------- operations

    def create(
        self,
        channel: Channel,
        author_id: int,
        content: str,
        embeds: list[Any],
        *,
        allowed_mentions: dict[str, Any] | None,
        flags: int = 0,
        reference_id: int | None = None,
        interaction_id: int | None = None,
        webhook: bool = False,
        type_: int = TYPE_DEFAULT,
        body: dict[str, Any] | None = None,
        attachments: list[FakeAttachment] | None = None,
    ) -> FakeMessage:
        """`body`: the request's, for the files and components it carries; `attachments`: a user's files."""
        state = self.state
        version = MessageVersion(
            time.monotonic(),
            content,
            embeds,
            allowed_mentions,
            flags,
            attachments=list(attachments) if attachments is not None else self._attachments(body or {}, []),
            components=list((body or {}).get("components") or []),
        )
        msg = FakeMessage(
            id=state.snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            versions=[version],
            reference_id=reference_id,
            interaction_id=interaction_id,
            ephemeral=bool(flags & FLAG_EPHEMERAL),
            webhook_id=state.application_id if webhook else None,
            type=type_,
        )
        self._compute_mentions(msg, allowed_mentions)
        state.messages[msg.id] = msg
        state.by_channel[channel.id].append(msg)
        if channel.is_thread and not msg.ephemeral:
            channel.message_count += 1
            channel.total_message_sent += 1
        self.gateway.dispatch_message("MESSAGE_CREATE", msg)
        self.changed()
        return msg

    def edit(self, msg: FakeMessage, body: dict[str, Any], *, clear_loading: bool = False) -> None:
        """A new version from a PATCH body: absent fields keep their value, a null content empties it."""
        prev = msg.versions[-1]
        content = body["content"] if body.get("content") is not None else prev.content
        if "content" in body and body["content"] is None:
            content = ""
        embeds = body["embeds"] if "embeds" in body and body["embeds"] is not None else prev.embeds
        flags = prev.flags
        if clear_loading:
            flags &= ~FLAG_LOADING
        validate_message(content, embeds, empty_ok=has_other_content(body) or bool(prev.attachments))
        allowed = body.get("allowed_mentions")
        components = (body["components"] or []) if "components" in body else prev.components
        attachments = self._attachments(body, prev.attachments)
        msg.versions.append(
            MessageVersion(time.monotonic(), content, embeds, allowed, flags, attachments, components)
        )
        self._compute_mentions(msg, allowed)
        self.gateway.dispatch_message("MESSAGE_UPDATE", msg)
        self.changed()

    def delete(self, msg: FakeMessage) -> None:
        if msg.deleted_at is not None:
            raise unknown_message()
        msg.deleted_at = time.monotonic()
        if not msg.ephemeral:
            channel = self.state.channels[msg.channel_id]
            if channel.is_thread:
                channel.message_count -= 1
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            intent = 0 if msg.guild_id else DIRECT_MESSAGES_INTENT
            self.gateway.dispatch("MESSAGE_DELETE", data, intent=intent)
        self.changed()

    def react(self, msg: FakeMessage, user_id: int, emoji: str, *, add: bool) -> None:
        users = msg.reactions.setdefault(emoji, set())
        if (user_id in users) == add:
            return  # Discord ignores duplicate adds/removes silently
        (users.add if add else users.discard)(user_id)
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": payloads.emoji(emoji),
            "burst": False,
            "type": 0,
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            if add:
                data["member"] = self.payloads.member(self.state.guilds[msg.guild_id], user_id)
                data["message_author_id"] = str(msg.author_id)
                data["burst_colors"] = []
        self.gateway.dispatch(
            "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE",
            data,
            intent=0 if msg.guild_id else DIRECT_MESSAGE_REACTIONS_INTENT,
        )
        self.changed()

    def clear_reactions(self, msg: FakeMessage, emoji: str | None = None) -> None:
        """Remove every reaction (or every one of `emoji`), one REMOVE event each."""
        for e, users in list(msg.reactions.items()):
            if emoji is None or e == emoji:
                for uid in list(users):
                    self.react(msg, uid, e, add=False)

    def _attachments(self, body: dict[str, Any], previous: list[FakeAttachment]) -> list[FakeAttachment]:
        """A body's "attachments": new files (their bytes read from the form) and, by id, kept ones; no
        "attachments" key keeps them all."""
        if "attachments" not in body:
            return previous
        kept = {a.id: a for a in previous}
        out = []
        for entry in body["attachments"] or []:
            if "_bytes" in entry:
                filename = entry.get("filename", "file")
                out.append(self.state.upload(filename, entry["_bytes"], entry["_content_type"]))
            elif int(entry["id"]) in kept:
                out.append(kept[int(entry["id"])])
        return out

    def _compute_mentions(self, msg: FakeMessage, allowed: dict[str, Any] | None) -> None:
        content = msg.content
        users = [int(u) for u in _MENTION_RE.findall(content) if int(u) in self.state.users]
        roles = [int(r) for r in _ROLE_MENTION_RE.findall(content)]
        everyone = "@everyone" in content or "@here" in content
        replied = self.state.messages.get(msg.reference_id) if msg.reference_id else None
        if allowed is not None:
            parse = allowed.get("parse", [])
            if "users" not in parse:
                users = [u for u in users if str(u) in {str(x) for x in allowed.get("users", [])}]
            if "roles" not in parse:
                roles = [r for r in roles if str(r) in {str(x) for x in allowed.get("roles", [])}]
            everyone = everyone and "everyone" in parse
            if replied is not None and allowed.get("replied_user", False):
                users.append(replied.author_id)
        elif replied is not None:
            users.append(replied.author_id)  # replies ping their author by default
        msg.mentions = list(dict.fromkeys(users))
        msg.mention_roles = roles
        msg.mention_everyone = everyone
