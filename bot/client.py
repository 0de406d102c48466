"""The bot: owns the services the cogs call, loads the cogs, and shuts down in the right order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot import gc_tuning, paced
from bot.admission import RESTARTING, Admission
from bot.attachment_fetch import AttachmentFetcher
from bot.budget import Budget, BudgetWatch
from bot.config import Config
from bot.db import DATABASE_DOWN, Database, DatabaseUnavailable, open_database
from bot.discord_history import DiscordFetcher
from bot.discord_targets import NO_MENTIONS
from bot.health import check
from bot.history import History
from bot.identify_gate import identify_gate
from bot.llm import LLMClient
from bot.model_calls import ModelCaller
from bot.model_errors import ModelErrorLog
from bot.model_retry import RetryPolicy
from bot.own_edits import read_own_edits_lightly
from bot.recovery import finalize_orphans
from bot.shard_plan import IDENTIFY_SPACING
from bot.store.alerts import AlertStore
from bot.store.answers import AnswersStore
from bot.store.inflight import InflightStore
from bot.store.retention import UsageRetention
from bot.store.settings import SettingsStore
from bot.store.starts import AnswerStarts
from bot.store.usage import UsageStore
from bot.streaming.display import STOP_BUTTON_TIMEOUT
from bot.streaming.manager import StreamManager
from bot.streaming.observer import Observers, StreamObserver
from bot.streaming.options import Limits
from bot.streaming.pacer import CHANNEL_WINDOW, Pacer
from bot.streaming.stream import FINAL_EDIT_TIMEOUT
from bot.usage_report import UsageReports

if TYPE_CHECKING:  # prometheus-client is loaded only with METRICS_PORT set
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.chat", "cogs.stop", "cogs.config", "cogs.usage", "cogs.continuation")
SHUTDOWN_TIMEOUT = 10.0
# After an answer's usage is recorded, its process may still write to Discord for this long.
WRITES_AFTER_AN_ANSWER = FINAL_EDIT_TIMEOUT + STOP_BUTTON_TIMEOUT
CLOSE_TIMEOUT = 5.0  # for each connection closed after the answers: nothing in shutdown waits unbounded
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    add_reactions=True,
    manage_messages=True,
    embed_links=True,
)


class StartupError(Exception):
    """The bot can't start for a reason the operator must fix; the message says which."""


# discord.py's own pool is unlimited: a burst of 1,000 /chat opened a socket per acknowledgement, and setting
# them up slowed the acknowledgements. A hundred carry over a thousand requests a second; the rest queue.
REST_CONNECTIONS = 100


class StreamcordBot(commands.Bot):
    def __init__(
        self, *, config: Config, db: Database, llm: LLMClient, pacer: Pacer, metrics: Metrics | None = None
    ) -> None:
        # Intents.default() carries reactions, guild and direct messages; mentions of the bot include their
        # content without the privileged message-content intent, which only plain messages in threads need.
        intents = discord.Intents.default()
        intents.message_content = config.message_content_intent
        super().__init__(
            command_prefix=commands.when_mentioned,  # required by commands.Bot; on_message runs none
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            http_trace=metrics.trace_into(pacer.trace_config()) if metrics else pacer.trace_config(),
            help_command=None,
            max_messages=None,  # nothing reads the message cache; every update event would search it
            connector=aiohttp.TCPConnector(limit=REST_CONNECTIONS),
            **config.shards.client_options(),
        )
        self.config = config
        self.db = db
        self.llm = llm
        self.pacer = pacer
        self.settings = SettingsStore(db)
        self.usage = UsageStore(db)
        self.inflight = InflightStore(db)
        self.starts = AnswerStarts(db, self.usage, self.inflight)
        self.answers = AnswersStore(db)
        # An answer's pages change until it ends: they are not cached while it streams.
        self.history = History(
            DiscordFetcher(self, pacer),
            self.answers,
            in_flight=lambda message_id: self.streams.by_message(message_id) is not None,
        )
        read_own_edits_lightly(self._connection, self.history.forget)
        self.attachments = AttachmentFetcher()
        self.retention = UsageRetention(db)
        self.budget = Budget(self.usage, AlertStore(db), config.prices)
        self.usage_reports = UsageReports(self.usage, self.settings, config.prices)
        self.admission = Admission(self.settings, self.usage, self.budget, config.defaults)
        self.budget_watch = BudgetWatch(self.budget, self.settings, config.defaults, self._send_alert)
        observers: list[StreamObserver] = [self.budget_watch, *([metrics] if metrics else [])]
        self.models = ModelCaller(
            llm,
            policy=RetryPolicy(budget=config.llm_retry_budget, max_retries=config.llm_max_retries),
            circuit_failures=config.circuit_failures,
            circuit_cool_down=config.circuit_cool_down,
            errors=ModelErrorLog(on_record=metrics.model_error if metrics else None),
        )
        self.streams = StreamManager(
            models=self.models,
            pacer=pacer,
            usage=self.usage,
            inflight=self.inflight,
            starts=self.starts,
            answers=self.answers,
            max_concurrent=config.max_concurrent_streams,
            limits=Limits(max_pages=config.max_reply_pages, deadline=config.llm_deadline),
            observer=Observers(observers),
        )
        self.identify_gate = identify_gate(db)
        self._max_concurrency = 1  # IDENTIFY buckets, from GET /gateway/bot when sharded
        if metrics:
            metrics.count_streams(lambda: self.streams.generating, lambda: self.streams.queued)
            metrics.watch_circuits(self.models.circuits)
        self._background: set[asyncio.Task[None]] = set()
        self._frozen = False  # start-up objects frozen out of the garbage collector (bot/gc_tuning.py)
        self.metrics_port: int | None = None  # where /metrics and /healthz listen, once they do

    async def setup_hook(self) -> None:
        """After login, before the gateway: the cogs, and the command sync if this process owns shard 0."""
        self.tree.error(self.on_app_command_error)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.config.shards.syncs_commands:
            try:
                await self.tree.sync()
            except discord.HTTPException as exc:
                raise StartupError(
                    f"Discord refused the slash commands ({exc.status} {exc.code}): {exc.text[:200]}"
                ) from exc
        if self.config.shards.sharded:
            _, _, limits = await self.http.get_bot_gateway()
            self._max_concurrency = max(1, int(limits["max_concurrency"]))

    async def connect(self, *, reconnect: bool = True) -> None:
        log.info("Connecting to the gateway: %s", self.config.shards.describe())
        # Replies a crash left streaming in this process's servers; other processes recover their own.
        self._run_in_background(
            finalize_orphans(self, self.inflight, self.pacer, self.config.shards.guilds())
        )
        if self.config.usage_retention_days is not None:
            self._run_in_background(self.retention.prune_daily(self.config.usage_retention_days))
        await super().connect(reconnect=reconnect)

    def _run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """One IDENTIFY per bucket at a time across every process sharing the database (Discord answers
        a faster one with op 9); replaces discord.py's in-process 5-s sleep."""
        await self.identify_gate.wait_turn((shard_id or 0) % self._max_concurrency, IDENTIFY_SPACING)

    async def _send_alert(self, guild_id: int, channel_id: int, text: str) -> None:
        # Checked again at send: a value set before /config checked it (or a stale import) may name
        # another server's channel.
        guild = self.get_guild(guild_id)
        if guild is None or guild.get_channel(channel_id) is None:
            raise LookupError(f"alert_channel {channel_id} is not a channel of server {guild_id}")
        await paced.send(self, self.pacer, channel_id, text)

    def gateway_problem(self) -> str | None:
        """None while connected to the gateway, else the reason /healthz gives."""
        if self.ws is None or not self.ws.open or self.is_closed():
            return "gateway disconnected"
        return None

    async def on_ready(self) -> None:
        assert self.user is not None
        if not self._frozen:  # READY comes again after a reconnect that could not resume
            self._frozen = True
            gc_tuning.freeze_startup_objects()
        invite = discord.utils.oauth_url(
            self.user.id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
        )
        log.info(
            "Ready as %s (%s) in %d servers. Invite: %s", self.user, self.user.id, len(self.guilds), invite
        )

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: mentions are answered by the chat cog's listener."""

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if self.admission.closing:  # commands are unloaded and the HTTP session closes under it
            log.info("Command /%s not run: the bot is shutting down (%r)", _command_name(interaction), error)
            message = RESTARTING
        elif isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
            message = str(error) or "You can't use this command here."
        elif isinstance(getattr(error, "original", None), DatabaseUnavailable):  # /config set, /usage, …
            log.warning("Command /%s: %s", _command_name(interaction), getattr(error, "original", error))
            message = DATABASE_DOWN
        else:
            log.error(
                "Command /%s failed for user %s in channel %s",
                _command_name(interaction),
                interaction.user.id,
                interaction.channel_id,
                exc_info=error,
            )
            message = "Something went wrong running that command. The error has been logged."
        try:
            with self.unless_closing(f"The error of /{_command_name(interaction)}"):
                if interaction.response.is_done():
                    await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
                else:
                    await interaction.response.send_message(
                        message, ephemeral=True, allowed_mentions=NO_MENTIONS
                    )
        except discord.HTTPException:
            log.warning("Could not tell user %s about a failed command", interaction.user.id)

    @contextlib.contextmanager
    def unless_closing(self, what: str) -> Iterator[None]:
        """A Discord request made while the bot shuts down may find the HTTP session closed under it:
        expected then, so logged; at any other time raised."""
        try:
            yield
        except (RuntimeError, aiohttp.ClientError) as exc:
            if not self.admission.closing:
                raise
            log.info("%s: not sent, the bot is shutting down (%r)", what, exc)

    async def close(self) -> None:
        # Streams first, while Discord and the database can still record how they ended.
        self.admission.closing = True
        await self.streams.shutdown(SHUTDOWN_TIMEOUT)
        await bounded(self.budget_watch.wait_idle(), "the budget alerts")
        for task in self._background:
            task.cancel()  # the daily prune sleeps most of the day
        await bounded(self.attachments.close(), "the attachment downloads")
        await self.usage.writes.close()
        await self.inflight.writes.close()
        await bounded(super().close(), "the Discord connection")


class ShardedStreamcordBot(StreamcordBot, commands.AutoShardedBot):
    """SHARD_COUNT set: SHARD_IDS of SHARD_COUNT shards in this process, one connection each."""

    def gateway_problem(self) -> str | None:
        """Every shard of this process connected (a shard not yet launched counts as down), else the ones
        that are not: their servers get no answers meanwhile."""
        shards = self.config.shards.running
        down = [i for i in shards if (shard := self.get_shard(i)) is None or shard.is_closed()]
        if not down:
            return None
        return f"gateway disconnected: shard{'s' if len(down) > 1 else ''} {', '.join(map(str, down))}"


@contextlib.asynccontextmanager
async def open_bot(config: Config) -> AsyncIterator[StreamcordBot]:
    """Resources open around the bot and close after it, in reverse order: the database outlives every
    stream's final usage write."""
    use_discord_endpoints(config.discord_api_base, config.discord_gateway_url)
    db = await open_database(config.database)
    try:
        llm = LLMClient(
            base_url=config.openai_base_url,
            api_key=config.openai_api_key,
            timeout=config.llm_timeout,
        )
        hold = await _spent_lately(db, config)
        pacer = Pacer(global_per_second=config.global_rate_limit, hold_at_start=hold)
        await pacer.start()
        metrics = _metrics() if config.metrics_port is not None else None
        try:
            kind = ShardedStreamcordBot if config.shards.sharded else StreamcordBot
            async with (
                kind(config=config, db=db, llm=llm, pacer=pacer, metrics=metrics) as bot,
                contextlib.AsyncExitStack() as served,
            ):
                if metrics is not None and config.metrics_port is not None:
                    from bot.metrics import serve

                    health = functools.partial(check, bot.gateway_problem, db, bot.models.circuits)
                    bot.metrics_port = await served.enter_async_context(
                        serve(metrics, health, config.metrics_host, config.metrics_port)
                    )
                yield bot
        finally:
            await bounded(pacer.close(), "the pacer")
            await bounded(llm.close(), "the model client")
    finally:
        await bounded(db.close(), "the database")


async def _spent_lately(db: Database, config: Config) -> bool:
    """Whether a previous process may have spent channel budgets in Discord's current windows: one of its
    answers was in progress when it ended, or ended lately (its final edit and stop button going out up
    to WRITES_AFTER_AN_ANSWER later). Nothing else it writes comes near a channel's budget."""
    since = discord.utils.utcnow() - timedelta(seconds=WRITES_AFTER_AN_ANSWER + CHANNEL_WINDOW)
    longest = timedelta(seconds=config.llm_deadline + WRITES_AFTER_AN_ANSWER)
    try:
        return await UsageStore(db).active_since(since, longest=longest)
    except DatabaseUnavailable:
        return True  # can't tell: hold, it costs a few seconds


async def bounded(closing: Awaitable[None], what: str) -> None:
    """Wait at most CLOSE_TIMEOUT for ``closing``; a hung connection must not keep the process alive."""
    try:
        await asyncio.wait_for(closing, CLOSE_TIMEOUT)
    except TimeoutError:
        log.warning("Closing %s took longer than %.0f s: left behind", what, CLOSE_TIMEOUT)


def _metrics() -> Metrics:
    from bot.metrics import Metrics  # prometheus-client (about 10 MB) only where metrics are served

    return Metrics()


def _command_name(interaction: discord.Interaction) -> str:
    return interaction.command.qualified_name if interaction.command else "?"


def use_discord_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Send REST calls to a proxy or the loopback test server; webhook routes read the same Route.BASE."""
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
