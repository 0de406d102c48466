"""`python -m bot [run | sync | migrate [--check] | usage-export --since YYYY-MM-DD]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TextIO

import discord

from bot import gc_tuning
from bot.budget import server_prices
from bot.client import StartupError, open_bot
from bot.config import (
    Config,
    ConfigError,
    configure_logging,
    load_config,
    load_database_location,
    load_prices,
)
from bot.db import (
    AppliedMigration,
    DatabaseLocation,
    DatabaseUnavailable,
    MigrationError,
    migration_status,
    open_database,
)
from bot.pricing import TokenCounts
from bot.shard_plan import ShardPlan
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

log = logging.getLogger("bot")
FORCED_EXIT = 1  # a second SIGTERM or Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Streamcord Discord bot")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the bot (the default)")
    commands.add_parser("sync", help="sync the slash commands with Discord and exit")
    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.add_argument(
        "--check", action="store_true", help="report pending migrations without applying them"
    )
    export = commands.add_parser("usage-export", help="write usage rows as CSV to stdout")
    export.add_argument("--since", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    args = parser.parse_args(argv)

    try:
        if args.command == "migrate":
            return asyncio.run(
                run_migrate_command(load_database_location(), check=args.check, out=sys.stdout)
            )
        if args.command == "usage-export":
            return asyncio.run(_export(args.since))
        config = load_config()
    except ConfigError as exc:
        print(
            f"Configuration error: {exc} See .env.example for every setting and its meaning.", file=sys.stderr
        )
        return 2
    configure_logging(config.log_level)
    gc_tuning.tune()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(sync_commands(config) if args.command == "sync" else run(config))
    except discord.LoginFailure:
        print(
            "Discord rejected DISCORD_TOKEN. Copy the bot token from the Developer Portal "
            "(Bot → Reset Token) into .env.",
            file=sys.stderr,
        )
        return 2
    except (MigrationError, DatabaseUnavailable, sqlite3.Error) as exc:
        print(f"Database error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"Start-up error: {exc}", file=sys.stderr)
        return 2
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is available (not on Windows): the same work for about a fifth less CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run(config: Config) -> None:
    async with open_bot(config) as bot:
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()

        def shut_down(sig: signal.Signals) -> None:
            if closing:
                # The operator insists: every step of shutdown is bounded, but they won't wait for it.
                log.warning("Received %s again: exiting now, without finishing the shutdown", sig.name)
                logging.shutdown()
                os._exit(FORCED_EXIT)
            log.info("Received %s: finishing in-flight answers and shutting down", sig.name)
            closing.add(loop.create_task(bot.close()))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, shut_down, sig)
        await bot.start(config.discord_token)
        await asyncio.gather(*closing)
    log.info("Stopped cleanly")


async def sync_commands(config: Config) -> None:
    """``python -m bot sync``: what the process owning shard 0 does at start, without connecting."""
    async with open_bot(replace(config, shards=ShardPlan())) as bot:
        await bot.login(config.discord_token)  # setup_hook loads the cogs and syncs their commands
    log.info("Slash commands synced")


async def run_migrate_command(
    location: DatabaseLocation, *, check: bool, out: TextIO, migrations_dir: Path | None = None
) -> int:
    """``python -m bot migrate [--check]``. Exit codes: 0 up to date, 1 pending (check only), 2 problem."""
    try:
        if check:
            status = await migration_status(location, migrations_dir)
            out.write(f"database: {location.label}\n")
            out.write(f"applied: {len(status.applied)} (latest: {_latest(status.applied)})\n")
            for migration in status.pending:
                out.write(f"pending: {migration.filename}\n")
            for problem in status.problems:
                out.write(f"problem: {problem}\n")
            if status.problems:
                return 2
            if status.pending:
                out.write("run `python -m bot migrate` to apply the pending migrations\n")
                return 1
            out.write("up to date\n")
            return 0
        db = await open_database(location, migrations_dir)
        try:
            for migration in db.newly_applied:
                out.write(f"applied: {migration.filename}\n")
            out.write(
                f"database {location.label} is up to date ({len(db.newly_applied)} migration(s) applied)\n"
            )
        finally:
            await db.close()
        return 0
    except _database_errors() as exc:
        out.write(f"error: {exc}\n")
        return 2


def _database_errors() -> tuple[type[Exception], ...]:
    """What a migration command reports in one line; asyncpg's errors only if PostgreSQL was used (asyncpg
    is imported only then)."""
    asyncpg = sys.modules.get("asyncpg")
    postgres: tuple[type[Exception], ...] = (asyncpg.PostgresError,) if asyncpg is not None else ()
    return (MigrationError, DatabaseUnavailable, sqlite3.DatabaseError, *postgres)


def _latest(applied: list[AppliedMigration]) -> str:
    return f"{applied[-1].version:04d}_{applied[-1].name}" if applied else "none"


async def _export(since: date) -> int:
    location = load_database_location()
    try:
        status = await migration_status(location)
        if status.pending or status.problems:
            print(
                f"The database {location.label} is not up to date: run `python -m bot migrate --check`.",
                file=sys.stderr,
            )
            return 2
        prices = load_prices()
        db = await open_database(location)
        settings = SettingsStore(db)

        async def cost(guild_id: int | None, model: str, tokens: TokenCounts) -> float | None:
            return prices.request_cost(model, tokens, await server_prices(settings, guild_id))

        try:
            rows = await UsageStore(db).export_csv(since, sys.stdout, cost)
        finally:
            await db.close()
    except (DatabaseUnavailable, sqlite3.Error) as exc:
        print(f"Database error: {exc}", file=sys.stderr)
        return 2
    print(f"{rows} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
