"""/config show|set|reset|history|export|import: per-server and per-channel settings, for members with
Manage Server."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import settings_transfer
from bot.channels import settings_channel_id
from bot.client import StreamcordBot
from bot.discord_targets import NO_MENTIONS
from bot.llm import models_within
from bot.settings import KEYS, SettingError, check_channel, check_key, format_value, parse_value
from bot.store.settings import NOT_SET, Scope

log = logging.getLogger(__name__)

ScopeChoice = Literal["channel", "server"]
_SCOPES: dict[ScopeChoice, Scope] = {"channel": "channel", "server": "guild"}
AUTOCOMPLETE_TIMEOUT = 2.0  # Discord drops autocomplete answers after 3 s
HISTORY_LIMIT = 10
_VALUE_CHARS = 80
_MESSAGE_LIMIT = 2000


class ManageServerRequired(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("You need the Manage Server permission to view or change Streamcord's settings.")


def _short(key: str, value: Any) -> str:
    text = format_value(key, value).replace("`", "'").replace("\n", " ")
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _where(scope: Scope) -> str:
    return "this channel" if scope == "channel" else "the whole server"


def _channel_here(guild: discord.Guild | None) -> Callable[[int], bool]:
    """Whether a channel id is one of this server's channels (import's channel ids, alert_channel)."""
    return lambda channel_id: guild is not None and guild.get_channel(channel_id) is not None


def _fit(lines: list[str]) -> str:
    """Join lines, dropping the ones that would push the reply past Discord's 2000 characters."""
    text = ""
    for line in lines:
        if len(text) + len(line) + 1 > _MESSAGE_LIMIT - 2:
            return text + "…"
        text += line + "\n"
    return text.rstrip("\n")


class ConfigCommands(commands.Cog, name="Config"):
    config = app_commands.Group(
        name="config",
        description="View or change Streamcord's settings for this server or channel",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
    )

    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # default_permissions only hides the commands; server admins can re-grant them to anyone.
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise ManageServerRequired
        return True

    @config.command(name="show", description="Show the settings in effect here, or one scope's overrides")
    @app_commands.describe(scope="Only list the overrides set for this channel or for the whole server")
    async def show(self, interaction: discord.Interaction, scope: ScopeChoice | None = None) -> None:
        guild_id, channel_id = self._ids(interaction)
        guild, channel = await self.bot.settings.overrides(guild_id, channel_id)
        if scope is not None:
            overrides = channel if scope == "channel" else guild
            where = _where(_SCOPES[scope])
            if not overrides:
                await self._reply(interaction, f"No settings are overridden for {where}.")
                return
            lines = [f"**Overrides for {where}:**"]
            lines += [f"`{key}` = `{_short(key, value)}`" for key, value in overrides.items()]
            await self._reply(interaction, _fit(lines))
            return
        effective = await self.bot.settings.get(guild_id, channel_id, self.bot.config.defaults)
        lines = ["**Settings in this channel** (channel override → server override → default):"]
        for key in KEYS:
            source = "channel" if key in channel else "server" if key in guild else "default"
            lines.append(f"`{key}` = `{_short(key, getattr(effective, key))}` ({source})")
        await self._reply(interaction, _fit(lines))

    @config.command(name="set", description="Change a setting for this channel or the whole server")
    @app_commands.describe(
        key="Which setting", value="The new value", scope="Where it applies (default: this channel)"
    )
    async def set_(
        self, interaction: discord.Interaction, key: str, value: str, scope: ScopeChoice = "channel"
    ) -> None:
        guild_id, channel_id = self._ids(interaction)
        store_scope = _SCOPES[scope]
        scope_id = channel_id if store_scope == "channel" else guild_id
        try:
            key = check_key(key)
            parsed = parse_value(key, value)  # for the reply and the model check; the store validates too
            check_channel(key, parsed, _channel_here(interaction.guild))
        except SettingError as exc:
            await self._reply(interaction, str(exc))
            return
        note = ""
        if KEYS[key].model and parsed is not None:
            await interaction.response.defer(ephemeral=True, thinking=True)  # listing models may be slow
            models = await self.bot.llm.list_models()
            if not models:
                note = " (the model server did not list its models, so the name is unchecked)"
            elif parsed not in models:
                suggestions = ", ".join(f"`{m}`" for m in models[:10])
                await self._reply(
                    interaction,
                    f"The model server has no model `{_short(key, parsed)}`. "
                    f"Available: {suggestions}{'…' if len(models) > 10 else ''}",
                )
                return
        try:
            before = await self.bot.settings.set(
                guild_id, store_scope, scope_id, key, value, interaction.user.id
            )
        except SettingError as exc:  # a server-only key set for a channel
            await self._reply(interaction, str(exc))
            return
        # Never the value: system prompts are not logged.
        log.info("User %s set %s for %s %s", interaction.user.id, key, store_scope, scope_id)
        previous = "was not set" if before is NOT_SET else f"was `{_short(key, before)}`"
        await self._reply(
            interaction,
            f"Set `{key}` to `{_short(key, parsed)}` for {_where(store_scope)} ({previous}).{note}",
        )

    @config.command(name="reset", description="Remove an override so the server value or default applies")
    @app_commands.describe(
        key="Which setting (leave empty to reset all of them)", scope="Default: this channel"
    )
    async def reset(
        self, interaction: discord.Interaction, key: str | None = None, scope: ScopeChoice = "channel"
    ) -> None:
        guild_id, channel_id = self._ids(interaction)
        store_scope = _SCOPES[scope]
        scope_id = channel_id if store_scope == "channel" else guild_id
        try:
            removed = await self.bot.settings.reset(guild_id, store_scope, scope_id, key, interaction.user.id)
        except SettingError as exc:
            await self._reply(interaction, str(exc))
            return
        where = _where(store_scope)
        if not removed:
            what = f"`{check_key(key)}` isn't" if key else "no setting is"
            await self._reply(interaction, f"Nothing to reset: {what} overridden for {where}.")
            return
        effective = await self.bot.settings.get(guild_id, channel_id, self.bot.config.defaults)
        lines = [f"Reset for {where}:"]
        lines += [
            f"`{k}` (was `{_short(k, old)}`, now `{_short(k, getattr(effective, k))}` here)"
            for k, old in removed.items()
        ]
        await self._reply(interaction, _fit(lines))

    @config.command(name="history", description="Recent setting changes in this server")
    async def history(self, interaction: discord.Interaction) -> None:
        guild_id, _ = self._ids(interaction)
        entries = await self.bot.settings.history(guild_id, limit=HISTORY_LIMIT)
        if not entries:
            await self._reply(interaction, "No settings have been changed in this server yet.")
            return
        lines = ["**Recent changes** (newest first):"]
        for entry in entries:
            where = "server" if entry.scope == "guild" else f"<#{entry.scope_id}>"
            old = f"`{_short(entry.key, entry.old_value)}`" if entry.old_set else "unset"
            new = f"`{_short(entry.key, entry.new_value)}`" if entry.new_set else "reset"
            lines.append(
                f"<t:{int(entry.at.timestamp())}:R> <@{entry.user_id}> `{entry.key}` ({where}): {old} → {new}"
            )
        await self._reply(interaction, _fit(lines))

    @config.command(name="export", description="Download this server's settings as a JSON file")
    async def export(self, interaction: discord.Interaction) -> None:
        guild_id, _ = self._ids(interaction)
        data = await settings_transfer.export(self.bot.settings, guild_id)
        await interaction.response.send_message(
            "This server's settings (`/config import` takes the file back):",
            file=discord.File(io.BytesIO(data), f"streamcord-settings-{guild_id}.json"),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @config.command(name="import", description="Replace this server's settings with an exported JSON file")
    @app_commands.describe(file="A file from /config export; nothing changes unless all of it is valid")
    async def import_(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        guild_id, _ = self._ids(interaction)
        if file.size > settings_transfer.MAX_BYTES:
            await self._reply(
                interaction,
                f"Nothing imported: the file is larger than {settings_transfer.MAX_BYTES // 1024} KB.",
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            wanted = settings_transfer.parse(await file.read(), _channel_here(interaction.guild))
        except settings_transfer.ImportRefused as refused:
            await self._reply(interaction, _fit(["Nothing imported:", *(f"- {p}" for p in refused.problems)]))
            return
        except discord.HTTPException as exc:
            log.warning("Could not download an import file: %s", exc.status)
            await self._reply(interaction, "Nothing imported: Discord did not hand over the file. Try again.")
            return
        result = await self.bot.settings.replace_all(guild_id, wanted, interaction.user.id)
        log.info(
            "User %s imported settings for server %s: %d written, %d removed",
            interaction.user.id,
            guild_id,
            result.written,
            result.removed,
        )
        await self._reply(
            interaction,
            f"Imported: {result.written} setting(s) changed, {result.removed} removed; "
            "the rest were already as in the file. `/config history` lists every change.",
        )

    @set_.autocomplete("key")
    @reset.autocomplete("key")
    async def key_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.strip().lower()
        return [
            app_commands.Choice(name=f"{key}: {info.description}"[:100], value=key)
            for key, info in KEYS.items()
            if needle in key or needle in info.description.lower()
        ][:25]

    @set_.autocomplete("value")
    async def value_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not interaction.permissions.manage_guild:
            return []  # checks don't run for autocomplete; don't reveal the model list
        info = KEYS.get(str(getattr(interaction.namespace, "key", "") or "").strip().lower())
        if info is None:
            return []
        options = info.suggestions
        if info.model:
            options += await models_within(self.bot.llm, AUTOCOMPLETE_TIMEOUT)
        needle = current.strip().lower()
        return [app_commands.Choice(name=o[:100], value=o[:100]) for o in options if needle in o.lower()][:25]

    @staticmethod
    def _ids(interaction: discord.Interaction) -> tuple[int, int]:
        """(server id, id of the channel whose settings apply here: a thread's parent, as /chat reads)."""
        guild_id, channel = interaction.guild_id, interaction.channel
        if guild_id is None or channel is None:  # interaction_check refuses DMs; this narrows the types
            raise app_commands.NoPrivateMessage
        return guild_id, settings_channel_id(channel)

    @staticmethod
    async def _reply(interaction: discord.Interaction, content: str) -> None:
        if interaction.response.is_done():  # deferred (ephemeral): replace the "thinking…" message
            await interaction.edit_original_response(content=content, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(content, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(ConfigCommands(bot))
