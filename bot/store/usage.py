"""One row per model request: tokens, timings, outcome; quota/cooldown lookups and summaries."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TextIO

from bot.db import Database, from_db_time, to_db_time, utcnow
from bot.status import FINAL_STATUSES, Status

Period = Literal["today", "7d", "30d", "all"]
CSV_COLUMNS = (
    "request_id",
    "guild_id",
    "channel_id",
    "user_id",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "estimated",
    "ttft_ms",
    "duration_ms",
    "status",
    "error",
    "started_at",
    "finished_at",
)


@dataclass(frozen=True)
class UsageSummary:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_requests: int  # requests whose token counts are estimates, not reported by the API
    by_status: dict[str, int] = field(default_factory=dict)
    top_users: list[tuple[int, int]] = field(default_factory=list)  # (user_id, tokens), most tokens first

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def start_of_utc_day(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(), tzinfo=UTC)


def period_since(period: Period, now: datetime) -> datetime | None:
    """Start of a /usage period: today = since 00:00 UTC, 7d/30d = rolling window, all = None."""
    if period == "today":
        return start_of_utc_day(now)
    if period == "7d":
        return now - timedelta(days=7)
    if period == "30d":
        return now - timedelta(days=30)
    if period == "all":
        return None
    raise ValueError(f"unknown period {period!r}")


class UsageStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def start(
        self, request_id: str, guild_id: int | None, channel_id: int, user_id: int, model: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO usage (request_id, guild_id, channel_id, user_id, model, status, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (request_id, guild_id, channel_id, user_id, model, Status.STREAMING, to_db_time(self._clock())),
        )

    async def finish(
        self,
        request_id: str,
        *,
        status: Status,
        prompt_tokens: int,
        completion_tokens: int,
        estimated: bool,
        ttft_ms: float | None,
        duration_ms: float | None,
        error: str | None = None,
        model: str | None = None,
    ) -> None:
        """``model``: the model that actually answered, when a fallback stood in for the one started with."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish() needs a final status, not {status!r}")
        changed = await self._db.execute(
            "UPDATE usage SET status = ?, prompt_tokens = ?, completion_tokens = ?, estimated = ?,"
            " ttft_ms = ?, duration_ms = ?, error = ?, finished_at = ?, model = COALESCE(?, model)"
            " WHERE request_id = ?",
            (
                status,
                prompt_tokens,
                completion_tokens,
                int(estimated),
                _ms(ttft_ms),
                _ms(duration_ms),
                error and error[:1000],
                to_db_time(self._clock()),
                model,
                request_id,
            ),
        )
        if not changed:
            raise LookupError(f"no usage row for request {request_id!r}; call start() first")

    async def tokens_today(self, guild_id: int | None, user_id: int) -> int:
        """Tokens the user spent in this server since 00:00 UTC (for daily_token_quota)."""
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens FROM usage"
            " WHERE guild_id IS ? AND user_id = ? AND started_at >= ?",
            (guild_id, user_id, to_db_time(start_of_utc_day(self._clock()))),
        )
        return int(row["tokens"]) if row else 0

    async def last_request_at(self, guild_id: int | None, user_id: int) -> datetime | None:
        """When the user's latest request in this server started (for cooldown_seconds)."""
        row = await self._db.fetchone(
            "SELECT MAX(started_at) AS at FROM usage WHERE guild_id IS ? AND user_id = ?", (guild_id, user_id)
        )
        return from_db_time(row["at"]) if row and row["at"] else None

    async def summary(
        self,
        *,
        guild_id: int | None,
        user_id: int | None = None,
        channel_id: int | None = None,
        since: datetime | None,
        top_n: int = 5,
    ) -> UsageSummary:
        where = ["guild_id IS ?"]
        params: list[Any] = [guild_id]
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if channel_id is not None:
            where.append("channel_id = ?")
            params.append(channel_id)
        if since is not None:
            where.append("started_at >= ?")
            params.append(to_db_time(since))
        condition = " AND ".join(where)
        # Both reads must see the same rows: a transaction keeps writes from landing between them.
        async with self._db.transaction():
            by_status_rows = await self._db.fetchall(
                "SELECT status, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt,"
                " SUM(completion_tokens) AS completion, SUM(estimated) AS estimated"
                f" FROM usage WHERE {condition}"
                " GROUP BY status",
                params,
            )
            top_rows = await self._db.fetchall(
                "SELECT user_id, SUM(prompt_tokens + completion_tokens) AS tokens"
                f" FROM usage WHERE {condition}"
                " GROUP BY user_id ORDER BY tokens DESC, user_id LIMIT ?",
                [*params, top_n],
            )
        return UsageSummary(
            requests=sum(row["requests"] for row in by_status_rows),
            prompt_tokens=sum(row["prompt"] for row in by_status_rows),
            completion_tokens=sum(row["completion"] for row in by_status_rows),
            estimated_requests=sum(row["estimated"] for row in by_status_rows),
            by_status={row["status"]: row["requests"] for row in by_status_rows},
            top_users=[(row["user_id"], row["tokens"]) for row in top_rows],
        )

    async def export_csv(self, since: date, out: TextIO) -> int:
        """Write a header and a row per request started on/after ``since`` (UTC), streamed from the database;
        returns the row count."""
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        count = 0
        async for row in self._db.iterate(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM usage WHERE started_at >= ? ORDER BY started_at, id",
            (to_db_time(datetime.combine(since, time(), tzinfo=UTC)),),
        ):
            writer.writerow([_csv_cell(value) for value in row])
            count += 1
        return count


def _csv_cell(value: Any) -> Any:
    """A spreadsheet runs a cell starting with = + - @ (or a tab or carriage return) as a formula: a model
    name or an error text must not. A leading apostrophe shows it as text."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)
