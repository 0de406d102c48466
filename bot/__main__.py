"""`python -m bot [run | migrate [--check] | usage-export --since YYYY-MM-DD]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from datetime import date

import discord

from bot.budget import server_prices
from bot.client import open_bot
from bot.config import Config, ConfigError, configure_logging, load_config, load_database_path, load_prices
from bot.db import Database, MigrationError, migration_status, run_migrate_command
from bot.pricing import TokenCounts
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Streamcord Discord bot")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the bot (the default)")
    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.add_argument(
        "--check", action="store_true", help="report pending migrations without applying them"
    )
    export = commands.add_parser("usage-export", help="write usage rows as CSV to stdout")
    export.add_argument("--since", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    args = parser.parse_args(argv)

    try:
        if args.command == "migrate":
            return asyncio.run(run_migrate_command(load_database_path(), check=args.check, out=sys.stdout))
        if args.command == "usage-export":
            return asyncio.run(_export(args.since))
        config = load_config()
    except ConfigError as exc:
        print(
            f"Configuration error: {exc} See .env.example for every setting and its meaning.", file=sys.stderr
        )
        return 2
    configure_logging(config.log_level)
    try:
        asyncio.run(run(config))
    except discord.LoginFailure:
        print(
            "Discord rejected DISCORD_TOKEN. Copy the bot token from the Developer Portal "
            "(Bot → Reset Token) into .env.",
            file=sys.stderr,
        )
        return 2
    except MigrationError as exc:
        print(f"Database error: {exc}", file=sys.stderr)
        return 2
    return 0


async def run(config: Config) -> None:
    async with open_bot(config) as bot:
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()

        def shut_down(sig: signal.Signals) -> None:
            log.info("Received %s: finishing in-flight answers and shutting down", sig.name)
            closing.add(loop.create_task(bot.close()))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, shut_down, sig)
        await bot.start(config.discord_token)
        await asyncio.gather(*closing)
    log.info("Stopped cleanly")


async def _export(since: date) -> int:
    path = load_database_path()
    status = await migration_status(path)
    if status.pending or status.problems:
        print(f"The database {path} is not up to date: run `python -m bot migrate --check`.", file=sys.stderr)
        return 2
    prices = load_prices()
    db = await Database.open(path)
    settings = SettingsStore(db)

    async def cost(guild_id: int | None, model: str, tokens: TokenCounts) -> float | None:
        return prices.request_cost(model, tokens, await server_prices(settings, guild_id))

    try:
        rows = await UsageStore(db).export_csv(since, sys.stdout, cost)
    finally:
        await db.close()
    print(f"{rows} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
