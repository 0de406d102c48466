"""/usage show and /usage forget: requests, tokens and cost per period (your own for everyone, others' with
Manage Server), an optional chart, and deleting your own rows after a confirmation."""

from __future__ import annotations

import io
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import StreamcordBot
from bot.db import DATABASE_DOWN, DatabaseUnavailable
from bot.discord_targets import NO_MENTIONS
from bot.store.usage import Period
from bot.usage_report import ChartKind, ReportRequest, Scope, UsageReport

log = logging.getLogger(__name__)

NEEDS_MANAGE_SERVER = (
    "You need the Manage Server permission to see usage for other people, channels or the server."
)
CHART_FILE = "usage.png"
FORGET_TIMEOUT = 60.0


def render(report: UsageReport, *, model_errors: dict[str, int] | None = None) -> discord.Embed:
    """``model_errors``: the last hour's model errors by kind, for admins (None: not shown)."""
    summary, cost, prices = report.summary, report.cost, report.prices
    embed = discord.Embed(title=report.title, colour=discord.Colour.blurple())
    statuses = ", ".join(f"{count:,} {status}" for status, count in sorted(summary.by_status.items()))
    embed.add_field(name="Requests", value=f"{summary.requests:,}" + (f" ({statuses})" if statuses else ""))
    tokens = f"{summary.total_tokens:,} ({summary.prompt_tokens:,} prompt"
    tokens += f" + {summary.completion_tokens:,} completion"
    if summary.reasoning_tokens:
        tokens += f", {summary.reasoning_tokens:,} of them reasoning"
    tokens += ")"
    if summary.estimated_requests:
        tokens += f"\n≈ {summary.estimated_requests:,} request(s) have estimated counts"
    embed.add_field(name="Tokens", value=tokens, inline=False)
    money = prices.money(cost.amount)
    if cost.unpriced_models:
        models = ", ".join(f"`{m}`" for m in cost.unpriced_models[:5])
        money += f"\nNo price for {models}{'…' if len(cost.unpriced_models) > 5 else ''}: counted as free"
    embed.add_field(name="Cost", value=money, inline=False)
    if report.show_top_users and summary.top_users:
        top = "\n".join(
            f"{rank}. <@{user_id}>: {tokens:,} tokens"
            for rank, (user_id, tokens) in enumerate(summary.top_users, 1)
        )
        embed.add_field(name="Top users", value=top, inline=False)
    if model_errors is not None:
        errors = "\n".join(f"{kind}: {count:,}" for kind, count in model_errors.items())
        embed.add_field(name="Model errors, last hour (whole bot)", value=errors or "none", inline=False)
    return embed


class ForgetConfirmation(discord.ui.View):
    """Two buttons under the ephemeral question; only the person who asked ever sees them."""

    def __init__(self, bot: StreamcordBot, guild_id: int | None, user_id: int) -> None:
        super().__init__(timeout=FORGET_TIMEOUT)
        self._bot = bot
        self._guild_id = guild_id
        self._user_id = user_id
        self.message: discord.InteractionMessage | None = None

    @discord.ui.button(label="Delete my usage", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetConfirmation]
    ) -> None:
        self.stop()
        try:
            forgotten = await self._bot.retention.forget(self._guild_id, self._user_id)
        except DatabaseUnavailable as exc:
            log.warning("Could not forget usage for user %s: %s", self._user_id, exc)
            content = f"Nothing was deleted: {DATABASE_DOWN}"
        else:
            content = f"Deleted {forgotten.deleted:,} usage record(s); "
            content += "the totals keep their tokens under nobody's name."
            if forgotten.kept_today:
                content += (
                    f" Today's {forgotten.kept_today:,} stay until the day ends (UTC): they count toward "
                    "today's quota and cooldown. Forget again tomorrow to delete them."
                )
        await interaction.response.edit_message(content=content, view=None, allowed_mentions=NO_MENTIONS)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _: discord.ui.Button[ForgetConfirmation]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content="Nothing was deleted.", view=None, allowed_mentions=NO_MENTIONS
        )

    async def on_timeout(self) -> None:
        if self.message is not None:
            try:
                await self.message.edit(
                    content="Nothing was deleted (no answer).", view=None, allowed_mentions=NO_MENTIONS
                )
            except discord.HTTPException:
                log.debug("Could not close the forget question for user %s", self._user_id)


class Usage(commands.Cog):
    usage = app_commands.Group(name="usage", description="Your usage of Streamcord, or the server's")

    def __init__(self, bot: StreamcordBot) -> None:
        self.bot = bot

    @usage.command(name="show", description="Requests, tokens and cost used with Streamcord")
    @app_commands.describe(
        period="Time span (default: today, UTC)",
        scope="Whose usage: yours (default), this channel's or the whole server's",
        user="Someone else's usage (needs Manage Server)",
        chart="Attach a chart per day and model: of tokens or of cost",
    )
    async def show(
        self,
        interaction: discord.Interaction,
        period: Period = "today",
        scope: Scope = "me",
        # Not Member alone: someone who left the server is a plain User, and their usage still counts.
        user: discord.Member | discord.User | None = None,
        chart: ChartKind | None = None,
    ) -> None:
        request = ReportRequest(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            asker=interaction.user.id,
            period=period,
            scope=scope,
            user=user.id if user else None,
            user_name=user.display_name if user else None,
        )
        if request.guild_id is None and (scope != "me" or user is not None):
            await _say(interaction, "In direct messages you can only see your own usage.")
            return
        if request.about_others and not interaction.permissions.manage_guild:
            await _say(interaction, NEEDS_MANAGE_SERVER)
            return
        if chart is not None:  # rendering may not fit in Discord's 3-s deadline for an answer
            await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.bot.usage_reports.report(request)
        # Operators' view of the model server's health: the same for every server the bot is in.
        errors = self.bot.models.errors.counts() if interaction.permissions.manage_guild else None
        embed = render(report, model_errors=errors)
        if chart is None:
            await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        png = await self.bot.usage_reports.chart(request, report, chart)
        embed.set_image(url=f"attachment://{CHART_FILE}")
        await interaction.followup.send(
            embed=embed,
            file=discord.File(io.BytesIO(png), CHART_FILE),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @usage.command(name="forget", description="Delete your own usage records here (asks first)")
    async def forget(self, interaction: discord.Interaction) -> None:
        where = "in this server" if interaction.guild_id else "in direct messages"
        view = ForgetConfirmation(self.bot, interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(
            f"Delete every usage record of yours {where}? The totals keep the tokens, under nobody's name. "
            "Today's (UTC) stay until the day ends, for the daily quota and cooldown. This can't be undone.",
            view=view,
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        view.message = await interaction.original_response()


async def _say(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: StreamcordBot) -> None:
    await bot.add_cog(Usage(bot))
