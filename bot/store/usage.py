"""One row per model request: tokens, timings, outcome; quota/cooldown lookups and summaries."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TextIO

from bot.db import Database, from_db_time, to_db_time, utcnow
from bot.pricing import TokenCounts
from bot.status import FINAL_STATUSES, Status
from bot.store.write_queue import WriteQueue

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
    "reasoning_tokens",
    "cost",  # in the price file's currency; empty for a model without a price
)
# Prices a row: (guild_id, model, its tokens) -> cost, or None for a model without a price.
RowCost = Callable[[int | None, str, TokenCounts], Awaitable[float | None]]
EXPORT_BATCH = 500  # rows read at a time by export_csv


@dataclass(frozen=True)
class AnswerStart:
    """Who asked what, where: an answer's first rows (usage, in flight) before the model is asked."""

    request_id: str
    guild_id: int | None
    channel_id: int
    user_id: int
    model: str


@dataclass(frozen=True)
class UsageSummary:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_requests: int  # requests whose token counts are estimates, not reported by the API
    by_status: dict[str, int] = field(default_factory=dict)
    reasoning_tokens: int = 0  # part of completion_tokens, where the server reported them
    top_users: list[tuple[int, int]] = field(default_factory=list)  # (user_id, tokens), most tokens first
    by_model: dict[str, TokenCounts] = field(default_factory=dict)

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
    """Usage rows are kept through a database outage: start() and finish() queue while it is away."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self.writes = WriteQueue(db)

    async def start(self, answers: Sequence[AnswerStart]) -> None:
        """The answers' rows, streaming: written together (bot/store/starts.py), so not queued in an outage:
        an answer whose row could not be written does not run."""
        at = to_db_time(self._clock())
        await self._db.execute_many(
            "INSERT INTO usage (request_id, guild_id, channel_id, user_id, model, status, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (a.request_id, a.guild_id, a.channel_id, a.user_id, a.model, Status.STREAMING, at)
                for a in answers
            ],
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
        reasoning_tokens: int = 0,
        model: str | None = None,
    ) -> None:
        """``model``: the model that actually answered, when a fallback stood in for the one started with."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish() needs a final status, not {status!r}")
        changed = await self.writes.write(
            "UPDATE usage SET status = ?, prompt_tokens = ?, completion_tokens = ?, reasoning_tokens = ?,"
            " estimated = ?, ttft_ms = ?, duration_ms = ?, error = ?, finished_at = ?,"
            " model = COALESCE(?, model) WHERE request_id = ?",
            (
                status,
                prompt_tokens,
                completion_tokens,
                reasoning_tokens,
                int(estimated),
                _ms(ttft_ms),
                _ms(duration_ms),
                error and error[:1000],
                to_db_time(self._clock()),
                model,
                request_id,
            ),
        )
        if changed == 0:  # None: queued, so not known yet
            raise LookupError(f"no usage row for request {request_id!r}; call start() first")

    async def active_since(self, since: datetime, *, longest: timedelta) -> bool:
        """Whether an answer was in progress, or ended, after ``since`` (none lasts over ``longest``)."""
        row = await self._db.fetchone(
            "SELECT 1 AS active FROM usage WHERE started_at > ? AND (finished_at IS NULL OR finished_at > ?)"
            " LIMIT 1",
            (to_db_time(since - longest), to_db_time(since)),
        )
        return row is not None

    async def tokens_today(self, guild_id: int | None, user_id: int) -> int:
        """Tokens the user spent in this server since 00:00 UTC (for daily_token_quota)."""
        guild, params = same_guild(guild_id)
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens FROM usage"
            f" WHERE {guild} AND user_id = ? AND started_at >= ?",
            (*params, user_id, to_db_time(start_of_utc_day(self._clock()))),
        )
        return int(row["tokens"]) if row else 0

    async def last_request_at(self, guild_id: int | None, user_id: int) -> datetime | None:
        """When the user's latest request in this server started (for cooldown_seconds)."""
        guild, params = same_guild(guild_id)
        row = await self._db.fetchone(
            f"SELECT MAX(started_at) AS at FROM usage WHERE {guild} AND user_id = ?", (*params, user_id)
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
        combined, params = _combined(guild_id, user_id, channel_id, since)
        # The reads must see the same rows: a transaction keeps writes (and the pruner) from landing between.
        async with self._db.snapshot():
            by_status_rows = await self._db.fetchall(
                f"SELECT status, {_SUMS} FROM ({combined}) AS requests GROUP BY status", params
            )
            by_model_rows = await self._db.fetchall(
                f"SELECT model, {_SUMS} FROM ({combined}) AS requests GROUP BY model", params
            )
            top_rows = await self._db.fetchall(
                "SELECT user_id, SUM(prompt + completion) AS tokens"
                f" FROM ({combined}) AS requests WHERE user_id IS NOT NULL"
                " GROUP BY user_id ORDER BY tokens DESC, user_id LIMIT ?",
                [*params, top_n],
            )
        return UsageSummary(
            requests=sum(row["requests"] for row in by_status_rows),
            prompt_tokens=sum(row["prompt"] for row in by_status_rows),
            completion_tokens=sum(row["completion"] for row in by_status_rows),
            estimated_requests=sum(row["estimated"] for row in by_status_rows),
            reasoning_tokens=sum(row["reasoning"] for row in by_status_rows),
            by_status={row["status"]: row["requests"] for row in by_status_rows},
            top_users=[(row["user_id"], row["tokens"]) for row in top_rows],
            by_model={row["model"]: _counts(row) for row in by_model_rows},
        )

    async def daily(
        self, *, guild_id: int | None, user_id: int | None, channel_id: int | None, since: datetime | None
    ) -> dict[date, dict[str, TokenCounts]]:
        """Per UTC day, per model: what the summary counts, spread over its days (for the chart)."""
        combined, params = _combined(guild_id, user_id, channel_id, since)
        rows = await self._db.fetchall(
            f"SELECT day, model, {_SUMS} FROM ({combined}) AS requests"
            " GROUP BY day, model ORDER BY day, model",
            params,
        )
        days: dict[date, dict[str, TokenCounts]] = {}
        for row in rows:
            days.setdefault(date.fromisoformat(row["day"]), {})[row["model"]] = _counts(row)
        return days

    async def export_csv(self, since: date, out: TextIO, cost: RowCost) -> int:
        """Write a header and a row per request started on/after ``since`` (UTC), read a batch at a time (a
        large table never sits in memory); returns the row count."""
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        count = 0
        after = (to_db_time(datetime.combine(since, time(), tzinfo=UTC)), 0)
        while rows := await self._db.fetchall(
            f"SELECT id, {', '.join(CSV_COLUMNS[:-1])} FROM usage WHERE (started_at, id) > (?, ?)"
            " ORDER BY started_at, id LIMIT ?",
            (*after, EXPORT_BATCH),
        ):
            for row in rows:
                tokens = TokenCounts(
                    1, row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]
                )
                amount = await cost(row["guild_id"], row["model"], tokens)
                cells = [_csv_cell(value) for value in tuple(row)[1:]]
                writer.writerow((*cells, "" if amount is None else f"{amount:.6f}"))
            count += len(rows)
            after = (rows[-1]["started_at"], rows[-1]["id"])
        return count


def _csv_cell(value: Any) -> Any:
    """A spreadsheet runs a cell starting with = + - @ (or a tab or carriage return) as a formula: a model
    name or an error text must not. A leading apostrophe shows it as text."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def same_guild(guild_id: int | None) -> tuple[str, tuple[int, ...]]:
    """A condition (and its parameters) on guild_id, None meaning direct messages; both forms use the index
    on SQLite and PostgreSQL (``IS ?`` is SQLite-only, ``IS NOT DISTINCT FROM`` skips PostgreSQL's)."""
    return ("guild_id IS NULL", ()) if guild_id is None else ("guild_id = ?", (guild_id,))


# Request rows and pruned per-day aggregates as one relation: (day, user_id, model, status, counts).
_ROWS = (
    "SELECT substr(started_at, 1, 10) AS day, user_id, model, status, 1 AS requests,"
    " prompt_tokens AS prompt, completion_tokens AS completion, reasoning_tokens AS reasoning,"
    " estimated FROM usage WHERE {where} AND started_at >= ?"
)
_AGGREGATES = (
    "SELECT day, user_id, model, status, requests, prompt_tokens, completion_tokens, reasoning_tokens,"
    " estimated_requests FROM usage_daily WHERE {where} AND day >= ?"
)
_SUMS = (
    "SUM(requests) AS requests, SUM(prompt) AS prompt, SUM(completion) AS completion,"
    " SUM(reasoning) AS reasoning, SUM(estimated) AS estimated"
)
_EPOCH = "0000"  # sorts before every stored time and day


def _combined(
    guild_id: int | None, user_id: int | None, channel_id: int | None, since: datetime | None
) -> tuple[str, list[Any]]:
    """The rows + aggregates a summary covers. An aggregated day counts when it starts on or after the
    period's start date: pruned days are whole days, so a rolling window's first day counts whole."""
    guild, guild_params = same_guild(guild_id)
    where = [guild]
    params: list[Any] = list(guild_params)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if channel_id is not None:
        where.append("channel_id = ?")
        params.append(channel_id)
    condition = " AND ".join(where)
    rows_since = to_db_time(since) if since else _EPOCH
    days_since = since.astimezone(UTC).date().isoformat() if since else _EPOCH
    sql = f"{_ROWS.format(where=condition)} UNION ALL {_AGGREGATES.format(where=condition)}"
    return sql, [*params, rows_since, *params, days_since]


def _counts(row: Any) -> TokenCounts:
    return TokenCounts(row["requests"], row["prompt"], row["completion"], row["reasoning"])


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)
