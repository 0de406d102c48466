"""Gateway sharding as Discord does it: which shard a guild's events reach, and who may IDENTIFY when.

- A guild's events go to shard ``(guild_id >> 22) % shard_count``; events without a guild (DMs) to shard 0.
- IDENTIFY carries ``[shard_id, shard_count]`` (absent: ``[0, 1]``); ``shard_id`` must be in range, else the
  connection is closed with 4010 "Invalid shard".
- One IDENTIFY per ``identify_interval`` seconds (Discord: 5) per bucket ``shard_id % max_concurrency``;
  a faster one is answered with op 9 (invalid session) and counted in ``violations``. Every IDENTIFY spends
  one of the day's ``session_start_total``, as ``GET /gateway/bot`` reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

CLOSE_INVALID_SHARD = 4010
SESSION_START_TOTAL = 1000
SESSION_RESET_AFTER_MS = 24 * 3600 * 1000


def shard_of(guild_id: int | None, shard_count: int) -> int:
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


def parse_shard(raw: object) -> tuple[int, int] | None:
    """``[shard_id, shard_count]`` from IDENTIFY, or None if malformed or out of range."""
    if raw is None:
        return (0, 1)
    if not isinstance(raw, list) or len(raw) != 2 or not all(isinstance(n, int) for n in raw):
        return None
    shard_id, shard_count = raw
    return (shard_id, shard_count) if shard_count >= 1 and 0 <= shard_id < shard_count else None


@dataclass
class Sharding:
    shards: int = 1  # what GET /gateway/bot recommends
    max_concurrency: int = 1
    identify_interval: float = 5.0
    session_start_total: int = SESSION_START_TOTAL
    session_start_remaining: int = SESSION_START_TOTAL
    violations: int = 0  # IDENTIFYs answered with op 9 for coming too fast
    identifies: list[tuple[int, int]] = field(default_factory=list)  # accepted (shard_id, shard_count)
    _last: dict[int, float] = field(default_factory=dict)  # bucket → monotonic time of its last IDENTIFY

    def gateway_bot(self, url: str) -> dict[str, object]:
        return {
            "url": url,
            "shards": self.shards,
            "session_start_limit": {
                "total": self.session_start_total,
                "remaining": self.session_start_remaining,
                "reset_after": SESSION_RESET_AFTER_MS,
                "max_concurrency": self.max_concurrency,
            },
        }

    def admit(self, shard_id: int) -> bool:
        """Spend a session start; False (a violation) if the shard's bucket identified too recently."""
        self.session_start_remaining = max(0, self.session_start_remaining - 1)
        bucket = shard_id % self.max_concurrency
        now = time.monotonic()
        last = self._last.get(bucket)
        if last is not None and now - last < self.identify_interval:
            self.violations += 1
            return False
        self._last[bucket] = now
        return True
