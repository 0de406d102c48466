"""Which gateway shards this process runs (SHARD_COUNT, SHARD_IDS), and what follows from that.

Unset: one connection, as a bot in fewer than 2,500 servers needs. Set: discord.py's AutoShardedBot runs
SHARD_IDS (default: all) of SHARD_COUNT shards. A server's events (its messages, reactions, interactions)
all reach the one shard that owns it, so a stream, its 🛑 and its /stop always meet in the same process;
recovery after a crash touches only this process's servers, and only the process owning shard 0 syncs the
slash commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.shards import GuildFilter, every_guild, on_shards

# IDENTIFYs of one bucket are spaced this far apart: Discord's 5 s plus room for the time between the
# gate letting a shard through and its IDENTIFY reaching Discord.
IDENTIFY_SPACING = 5.5


@dataclass(frozen=True)
class ShardPlan:
    count: int | None = None  # SHARD_COUNT; None: not sharded
    ids: tuple[int, ...] | None = None  # SHARD_IDS; None: every shard of count

    @property
    def sharded(self) -> bool:
        return self.count is not None

    @property
    def syncs_commands(self) -> bool:
        """Command sync runs once: in the process owning shard 0 (or the only one)."""
        return self.ids is None or 0 in self.ids

    def guilds(self) -> GuildFilter:
        """The servers whose events reach this process."""
        if self.count is None or self.ids is None:
            return every_guild
        return on_shards(self.count, self.ids)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AutoShardedBot (none unsharded)."""
        if self.count is None:
            return {}
        return {"shard_count": self.count, "shard_ids": None if self.ids is None else list(self.ids)}

    @property
    def running(self) -> tuple[int, ...]:
        """The shards this process runs (none when not sharded)."""
        if self.count is None:
            return ()
        return tuple(range(self.count)) if self.ids is None else self.ids

    def describe(self) -> str:
        if self.count is None:
            return "one gateway connection"
        return f"shards {', '.join(map(str, self.running))} of {self.count}"


def parse_shard_plan(count: str, ids: str) -> ShardPlan:
    """From SHARD_COUNT and SHARD_IDS as written; raises ValueError naming the variable at fault."""
    if not count:
        if ids:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards across processes).")
        return ShardPlan()
    try:
        total = int(count)
    except ValueError:
        raise ValueError(f"SHARD_COUNT must be a whole number, got {count!r}.") from None
    if total < 1:
        raise ValueError(f"SHARD_COUNT must be at least 1, got {count!r}.")
    if not ids:
        return ShardPlan(total)
    try:
        chosen = tuple(sorted({int(part) for part in ids.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"SHARD_IDS must be comma-separated shard numbers, got {ids!r}.") from None
    if not chosen or not all(0 <= i < total for i in chosen):
        raise ValueError(f"SHARD_IDS must be shard numbers from 0 to {total - 1}, got {ids!r}.")
    return ShardPlan(total, chosen)
