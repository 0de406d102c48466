"""Server/channel setting overrides with an audit trail."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.db import Database, from_db_time, to_db_time, utcnow
from bot.settings import ChannelSettings, check_key, check_scope, parse_value, resolve

Scope = Literal["guild", "channel"]

log = logging.getLogger(__name__)

REFRESH_AFTER = 30.0  # seconds before the overrides in memory are read again (another process may write)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    guild_id: int
    scope: Scope
    scope_id: int
    key: str
    old_value: Any
    new_value: Any
    user_id: int
    at: datetime
    old_set: bool  # False: there was no override before (old_value is None)
    new_set: bool  # False: the override was reset (new_value is None)


@dataclass(frozen=True)
class Overrides:
    """Every override in one server: its own, and each channel's (typed values)."""

    server: dict[str, Any] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Replaced:
    written: int  # overrides set or changed
    removed: int  # overrides the new set no longer has


NOT_SET: Any = object()


class SettingsStore:
    """Every override is read into memory at the first read (one query: rows exist only where an admin set
    something), and read again after any write. So an answer's admission reads no database: a burst of
    /chat in channels not seen yet would otherwise queue a read per channel behind the database's one
    connection, and keep the interactions waiting. Other processes' writes (a shared PostgreSQL) show
    within REFRESH_AFTER: an older copy is read again in the background while it still answers."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self._overrides: dict[tuple[Scope, int], dict[str, Any]] | None = None  # None: read them first
        self._loading = asyncio.Lock()  # one read of them at a time, however many wait for it
        self._loaded_at = -math.inf  # monotonic
        self._refresh: asyncio.Task[None] | None = None
        # Bumped on every write so a read that raced a write never keeps the stale result.
        self._generation = 0

    async def get(self, guild_id: int | None, channel_id: int, defaults: ChannelSettings) -> ChannelSettings:
        guild, channel = await self.overrides(guild_id, channel_id)
        return resolve(defaults, guild, channel)

    async def overrides(self, guild_id: int | None, channel_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(server overrides, channel overrides) as typed values; direct messages (no guild) have none."""
        if guild_id is None:
            return {}, {}
        return await self._scope_values("guild", guild_id), await self._scope_values("channel", channel_id)

    async def server(self, guild_id: int) -> dict[str, Any]:
        """The server-wide overrides alone (typed values)."""
        return await self._scope_values("guild", guild_id)

    async def set(
        self, guild_id: int, scope: Scope, scope_id: int, key: str, value: str, user_id: int
    ) -> Any:
        """Validate ``value`` (raises SettingError) and store it; returns the previous override, or NOT_SET
        (None is a value: "none" clears an optional limit)."""
        key = check_key(key)
        check_scope(key, scope)
        new_json = json.dumps(parse_value(key, value))
        _check_scope(guild_id, scope, scope_id)
        now = to_db_time(self._clock())
        async with self._db.transaction():
            row = await self._db.fetchone(
                "SELECT value FROM settings WHERE scope = ? AND scope_id = ? AND key = ?",
                (scope, scope_id, key),
            )
            old_json = row["value"] if row else None
            await self._upsert(guild_id, scope, scope_id, key, new_json, user_id, now)
            await self._audit(guild_id, scope, scope_id, key, old_json, new_json, user_id, now)
        self._invalidate()
        return NOT_SET if old_json is None else json.loads(old_json)

    async def reset(
        self, guild_id: int, scope: Scope, scope_id: int, key: str | None, user_id: int
    ) -> dict[str, Any]:
        """Remove one override (all at that scope when key is None); returns the removed {key: old value}."""
        _check_scope(guild_id, scope, scope_id)
        now = to_db_time(self._clock())
        sql = "SELECT key, value FROM settings WHERE scope = ? AND scope_id = ?"
        params: tuple[Any, ...] = (scope, scope_id)
        if key is not None:
            key = check_key(key)
            sql += " AND key = ?"
            params += (key,)
        async with self._db.transaction():
            rows = await self._db.fetchall(sql, params)
            for row in rows:
                await self._db.execute(
                    "DELETE FROM settings WHERE scope = ? AND scope_id = ? AND key = ?",
                    (scope, scope_id, row["key"]),
                )
                await self._audit(guild_id, scope, scope_id, row["key"], row["value"], None, user_id, now)
        self._invalidate()
        return {row["key"]: json.loads(row["value"]) for row in rows}

    async def guild_overrides(self, guild_id: int) -> Overrides:
        rows = await self._db.fetchall(
            "SELECT scope, scope_id, key, value FROM settings WHERE guild_id = ?"
            " ORDER BY scope, scope_id, key",
            (guild_id,),
        )
        overrides = Overrides()
        for row in rows:
            values = (
                overrides.server
                if row["scope"] == "guild"
                else overrides.channels.setdefault(row["scope_id"], {})
            )
            values[row["key"]] = json.loads(row["value"])
        return overrides

    async def replace_all(self, guild_id: int, wanted: Overrides, user_id: int) -> Replaced:
        """Make the server's overrides exactly ``wanted`` (already validated) in one transaction; every
        change is audited, unchanged overrides are left alone."""
        target: dict[tuple[Scope, int, str], str] = {
            ("guild", guild_id, key): json.dumps(value) for key, value in wanted.server.items()
        }
        for channel_id, values in wanted.channels.items():
            target.update((("channel", channel_id, key), json.dumps(value)) for key, value in values.items())
        now = to_db_time(self._clock())
        written = removed = 0
        async with self._db.transaction():
            rows = await self._db.fetchall(
                "SELECT scope, scope_id, key, value FROM settings WHERE guild_id = ?", (guild_id,)
            )
            current = {(row["scope"], row["scope_id"], row["key"]): row["value"] for row in rows}
            for (scope, scope_id, key), old_json in current.items():
                if (scope, scope_id, key) not in target:
                    await self._db.execute(
                        "DELETE FROM settings WHERE scope = ? AND scope_id = ? AND key = ?",
                        (scope, scope_id, key),
                    )
                    await self._audit(guild_id, scope, scope_id, key, old_json, None, user_id, now)
                    removed += 1
            for (scope, scope_id, key), new_json in target.items():
                old_json = current.get((scope, scope_id, key))
                if old_json == new_json:
                    continue
                await self._upsert(guild_id, scope, scope_id, key, new_json, user_id, now)
                await self._audit(guild_id, scope, scope_id, key, old_json, new_json, user_id, now)
                written += 1
        self._invalidate()
        return Replaced(written, removed)

    async def history(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The server's most recent setting changes, newest first."""
        rows = await self._db.fetchall(
            "SELECT id, guild_id, scope, scope_id, key, old_value, new_value, user_id, at"
            " FROM config_audit WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [
            AuditEntry(
                id=row["id"],
                guild_id=row["guild_id"],
                scope=row["scope"],
                scope_id=row["scope_id"],
                key=row["key"],
                old_value=None if row["old_value"] is None else json.loads(row["old_value"]),
                new_value=None if row["new_value"] is None else json.loads(row["new_value"]),
                user_id=row["user_id"],
                at=from_db_time(row["at"]),
                old_set=row["old_value"] is not None,
                new_set=row["new_value"] is not None,
            )
            for row in rows
        ]

    async def _scope_values(self, scope: Scope, scope_id: int) -> dict[str, Any]:
        overrides = self._overrides
        if overrides is None:
            overrides = await self._load()
        elif self._refresh is None and time.monotonic() - self._loaded_at > REFRESH_AFTER:
            self._refresh = asyncio.create_task(self._read_again(), name="settings-refresh")
        return dict(overrides.get((scope, scope_id), {}))

    async def _load(self) -> dict[tuple[Scope, int], dict[str, Any]]:
        async with self._loading:
            while self._overrides is None:  # a write during the read: read again
                await self._read_all()
            return self._overrides

    async def _read_again(self) -> None:
        """In the background, while the copy in memory answers; a failure keeps it a while longer."""
        try:
            async with self._loading:
                await self._read_all()
        except Exception as exc:
            log.warning("Settings not read again (the copy in memory stays): %r", exc)
            self._loaded_at = time.monotonic()
        finally:
            self._refresh = None

    async def _read_all(self) -> None:
        generation = self._generation
        rows = await self._db.fetchall("SELECT scope, scope_id, key, value FROM settings")
        loaded: dict[tuple[Scope, int], dict[str, Any]] = {}
        for row in rows:
            values = loaded.setdefault((row["scope"], row["scope_id"]), {})
            values[row["key"]] = json.loads(row["value"])
        if generation == self._generation:  # else a write came meanwhile: the next read loads again
            self._overrides, self._loaded_at = loaded, time.monotonic()

    def _invalidate(self) -> None:
        self._generation += 1
        self._overrides = None

    async def _upsert(
        self, guild_id: int, scope: Scope, scope_id: int, key: str, new_json: str, user_id: int, at: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO settings (scope, scope_id, guild_id, key, value, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (scope, scope_id, key) DO UPDATE SET"
            " value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (scope, scope_id, guild_id, key, new_json, user_id, at),
        )

    async def _audit(
        self,
        guild_id: int,
        scope: Scope,
        scope_id: int,
        key: str,
        old_json: str | None,
        new_json: str | None,
        user_id: int,
        at: str,
    ) -> None:
        await self._db.execute(
            "INSERT INTO config_audit (guild_id, scope, scope_id, key, old_value, new_value, user_id, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, scope, scope_id, key, old_json, new_json, user_id, at),
        )


def _check_scope(guild_id: int, scope: Scope, scope_id: int) -> None:
    if scope not in ("guild", "channel"):
        raise ValueError(f"scope must be 'guild' or 'channel', not {scope!r}")
    if scope == "guild" and scope_id != guild_id:
        raise ValueError("a guild-scope setting's scope_id must be the guild id")
