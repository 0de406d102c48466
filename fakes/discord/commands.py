"""Application commands: what the bot synced, and users running them (slash commands, autocomplete) or
clicking the buttons under the bot's messages.

Running a command checks its name, subcommands and options against the synced schema, as Discord's client
would, and dispatches INTERACTION_CREATE with the options typed and resolved.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fakes.discord.changes import Changes
from fakes.discord.errors import ApiError
from fakes.discord.model import (
    INTERACTION_COMPONENT,
    OPT_ATTACHMENT,
    OPT_BOOLEAN,
    OPT_CHANNEL,
    OPT_INTEGER,
    OPT_MENTIONABLE,
    OPT_NUMBER,
    OPT_ROLE,
    OPT_USER,
    FakeAttachment,
    FakeInteraction,
    FakeMessage,
    Guild,
)

INTERACTION_COMMAND, INTERACTION_AUTOCOMPLETE = 2, 4
CHAT_INPUT = 1  # command type of a slash command
BUTTON = 2  # component type
SUB_COMMAND_TYPES = (1, 2)  # option types of a subcommand and a subcommand group


class Commands(Changes):
    # ----------------------------------------------------------------------------------- the synced set

    def listed(self, guild_id: str | None) -> list[dict[str, Any]]:
        return [c for c in self.state.commands if c.get("guild_id") == guild_id]

    def store(self, data: dict[str, Any], guild_id: str | None) -> dict[str, Any]:
        """Create or overwrite (same name and type in the same scope) one command."""
        state = self.state
        existing = next(
            (
                c
                for c in state.commands
                if c["name"] == data["name"]
                and c.get("type", CHAT_INPUT) == data.get("type", CHAT_INPUT)
                and c.get("guild_id") == guild_id
            ),
            None,
        )
        cmd = {
            "type": CHAT_INPUT,
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            "description": "",
            **data,
            "id": existing["id"] if existing else str(state.snowflake()),
            "application_id": str(state.application_id),
            "version": str(state.snowflake()),
            "guild_id": guild_id,
        }
        if existing is not None:
            state.commands.remove(existing)
        state.commands.append(cmd)
        self.changed()
        return cmd

    def replace(self, body: list[dict[str, Any]], guild_id: str | None) -> list[dict[str, Any]]:
        """A bulk overwrite: commands of this scope not in `body` are deleted."""
        keep = {(c["name"], c.get("type", CHAT_INPUT)) for c in body}
        self.state.commands[:] = [
            c
            for c in self.state.commands
            if c.get("guild_id") != guild_id or (c["name"], c.get("type", CHAT_INPUT)) in keep
        ]
        return [self.store(c, guild_id) for c in body]

    def delete(self, command_id: str, guild_id: str | None) -> None:
        commands = self.state.commands
        before = len(commands)
        commands[:] = [c for c in commands if not (c["id"] == command_id and c.get("guild_id") == guild_id)]
        if len(commands) == before:
            raise ApiError(404, 10063, "Unknown application command")

    # ----------------------------------------------------------------------------------- users running them

    def run(
        self,
        itype: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any] | None,
        focused: str | None,
    ) -> FakeInteraction:
        """`name` may hold subcommands ("config set"); `focused` names the option being autocompleted."""
        state = self.state
        guild = state.guilds[guild_id]
        channel = state.channel(channel_id)
        if channel.guild_id != guild_id:
            raise LookupError(f"channel {channel_id} is not in guild {guild_id}")
        words = name.split()
        cmd = self._find(guild_id, words[0])
        resolved: dict[str, dict[str, Any]] = {}
        schema = cmd.get("options", [])
        nest: list[tuple[str, int]] = []
        for word in words[1:]:
            sub = next((o for o in schema if o["name"] == word and o["type"] in SUB_COMMAND_TYPES), None)
            if sub is None:
                raise LookupError(f"{word!r} is not a subcommand of {cmd['name']!r}")
            nest.append((word, sub["type"]))
            schema = sub.get("options", [])
        opts = self._build_options(guild, schema, options or {}, resolved, focused)
        for word, stype in reversed(nest):
            opts = [{"name": word, "type": stype, "options": opts}]
        inter = self._new_interaction(itype, guild_id, channel_id, user_id, name)
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": CHAT_INPUT, "options": opts}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        self.gateway.dispatch("INTERACTION_CREATE", self.payloads.interaction(inter, data))
        self.changed()
        return inter

    def click(self, message: FakeMessage, user_id: int, custom_id: str) -> FakeInteraction:
        """A user presses the button `custom_id` under `message` (a guild message)."""
        buttons = [c.get("custom_id") for row in message.components for c in row.get("components", [])]
        if custom_id not in buttons or message.guild_id is None:
            raise LookupError(f"message {message.id} has no button {custom_id!r} (has {buttons})")
        inter = self._new_interaction(
            INTERACTION_COMPONENT, message.guild_id, message.channel_id, user_id, custom_id, message.id
        )
        data = {"custom_id": custom_id, "component_type": BUTTON}
        payload = self.payloads.interaction(inter, data) | {"message": self.payloads.message(message)}
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        self.changed()
        return inter

    def _new_interaction(
        self,
        itype: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        message_id: int | None = None,
    ) -> FakeInteraction:
        state = self.state
        inter = FakeInteraction(
            id=state.snowflake(),
            token=f"itoken-{secrets.token_urlsafe(24)}",
            type=itype,
            name=name,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            created_at=time.monotonic(),
            message_id=message_id,
        )
        state.interactions[inter.id] = inter
        state.interactions_by_token[inter.token] = inter
        return inter

    def _find(self, guild_id: int | None, name: str) -> dict[str, Any]:
        """The guild's command of that name, else the global one (as Discord's client offers them)."""
        commands = self.state.commands
        for cmd in commands:
            if (
                cmd["name"] == name
                and cmd.get("type", CHAT_INPUT) == CHAT_INPUT
                and cmd.get("guild_id") == (str(guild_id) if guild_id else None)
            ):
                return cmd
        for cmd in commands:
            if (
                cmd["name"] == name
                and cmd.get("type", CHAT_INPUT) == CHAT_INPUT
                and cmd.get("guild_id") is None
            ):
                return cmd
        synced = [c["name"] for c in commands]
        raise LookupError(f"slash command {name!r} is not synced (synced: {synced})")

    def _build_options(
        self,
        guild: Guild | None,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        out = []
        for name, value in values.items():
            opt = by_name.get(name)
            if opt is None:
                raise LookupError(f"option {name!r} not in synced schema {sorted(by_name)}")
            otype = opt["type"]
            entry: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                entry.update(value=str(value), focused=True)
            elif otype == OPT_INTEGER:
                entry["value"] = int(value)
            elif otype == OPT_NUMBER:
                entry["value"] = float(value)
            elif otype == OPT_BOOLEAN:
                entry["value"] = bool(value)
            elif otype == OPT_ATTACHMENT:
                if not isinstance(value, FakeAttachment):
                    raise TypeError(f"option {name!r} takes a file from FakeDiscord.upload()")
                entry["value"] = str(value.id)
                resolved.setdefault("attachments", {})[str(value.id)] = self.payloads.attachment(value)
            elif otype in (OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE):
                entry["value"] = str(int(value))
                self._resolve(guild, int(value), otype, resolved)
            else:
                entry["value"] = str(value)
            out.append(entry)
        return out

    def _resolve(
        self, guild: Guild | None, target: int, otype: int, resolved: dict[str, dict[str, Any]]
    ) -> None:
        state = self.state
        if target in state.users and otype in (OPT_USER, OPT_MENTIONABLE):
            resolved.setdefault("users", {})[str(target)] = self.payloads.user(target)
            if guild is not None and target in guild.members:
                resolved.setdefault("members", {})[str(target)] = self.payloads.member(
                    guild, target, with_user=False, with_permissions=True
                )
        elif target in state.channels:
            data = self.payloads.channel(state.channels[target])
            data["permissions"] = str(state.channel_permissions(target, state.bot_user_id))
            resolved.setdefault("channels", {})[str(target)] = data
        elif guild is not None and target in guild.roles:
            resolved.setdefault("roles", {})[str(target)] = guild.roles[target]
