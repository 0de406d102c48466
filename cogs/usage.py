"""/usage: requests and tokens per period; your own for everyone, others' with Manage Server."""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import StreamcordBot
from bot.db import utcnow
from bot.discord_targets import NO_MENTIONS
from bot.store.usage import Period, UsageSummary, period_since

log = logging.getLogger(__name__)

ScopeChoice = Literal["me", "channel", "server"]
_PERIODS: dict[Period, str] = {
    "today": "today (UTC)",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
    "all": "all time",
}
NEEDS_MANAGE_SERVER = (
    "You need the Manage Server permission to see usage for other people, channels or the server."
)


def render(
    summary: UsageSummary, *, title: str, show_top_users: bool, model_errors: dict[str, int] | None = None
) -> discord.Embed:
    """``model_errors``: the last hour's model errors by kind, for admins (None: not shown)."""
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    statuses = ", ".join(f"{count:,} {status}" for status, count in sorted(summary.by_status.items()))
    embed.add_field(name="Requests", value=f"{summary.requests:,}" + (f" ({statuses})" if statuses else ""))
    tokens = f"{summary.total_tokens:,} ({summary.prompt_tokens:,} prompt"
    tokens += f" + {summary.completion_tokens:,} completion)"
    if summary.estimated_requests:
        tokens += f"\n≈ {summary.estimated_requests:,} request(s) have estimated counts"
    embed.add_field(name="Tokens", value=tokens, inline=False)
    if show_top_users and summary.top_users:
        top = "\n".join(
            f"{rank}. <@{user_id}>: {tokens:,} tokens"
            for rank, (user_id, tokens) in enumerate(summary.top_users, 1)
        )
        embed.add_field(name="Top users", value=top, inline=False)
    if model_errors is not None:
        errors = "\n".join(f"{kind}: {count:,}" for kind, count in model_errors.items())
        embed.add_field(name="Model errors, last hour (whole bot)", value=errors or "none", inline=False)
    return embed


class Usage(commands.Cog):
    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Requests and tokens used with Streamcord")
    @app_commands.describe(
        period="Time span (default: today, UTC)",
        scope="Whose usage: yours (default), this channel's or the whole server's",
        user="Someone else's usage (needs Manage Server)",
    )
    async def usage(
        self,
        interaction: discord.Interaction,
        period: Period = "today",
        scope: ScopeChoice = "me",
        # Not Member alone: someone who left the server is a plain User, and their usage still counts.
        user: discord.Member | discord.User | None = None,
    ) -> None:
        guild_id, channel_id = interaction.guild_id, interaction.channel_id
        subject = user.id if user is not None else interaction.user.id if scope == "me" else None
        if guild_id is None and (scope != "me" or user is not None):
            await interaction.response.send_message(
                "In direct messages you can only see your own usage.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        others = scope != "me" or subject != interaction.user.id
        if others and not interaction.permissions.manage_guild:
            await interaction.response.send_message(
                NEEDS_MANAGE_SERVER, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        summary = await self.bot.usage.summary(
            guild_id=guild_id,
            user_id=subject,
            channel_id=channel_id if scope == "channel" else None,
            since=period_since(period, utcnow()),
        )
        if subject == interaction.user.id:
            whose = "Your usage"
        elif subject is not None:
            whose = f"Usage by {user.display_name if user else subject}"
        else:
            whose = "Usage in this channel" if scope == "channel" else "Usage in this server"
        title = f"{whose}{' in this channel' if scope == 'channel' and subject else ''}, {_PERIODS[period]}"
        # Operators' view of the model server's health: the same for every server the bot is in.
        errors = self.bot.models.errors.counts() if interaction.permissions.manage_guild else None
        embed = render(summary, title=title, show_top_users=subject is None, model_errors=errors)
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Usage(bot))
