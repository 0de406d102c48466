"""Which shard a server's events reach: ``(guild_id >> 22) % shard_count``; direct messages reach shard 0.

So a stream, its 🛑 and its /stop always reach the process that runs the server's shard.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

# Whether a server (None: direct messages) is this process's to look after.
GuildFilter = Callable[[int | None], bool]


def shard_of(guild_id: int | None, shard_count: int) -> int:
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def on_shards(shard_count: int, shard_ids: Collection[int]) -> GuildFilter:
    """The servers (and, with shard 0, the direct messages) that reach these shards."""
    ids = frozenset(shard_ids)
    return lambda guild_id: shard_of(guild_id, shard_count) in ids


def every_guild(guild_id: int | None) -> bool:
    """One process runs every shard (or there is no sharding)."""
    return True
