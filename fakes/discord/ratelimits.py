"""Discord's rate limits as fixed windows: per-route buckets, the channel's message budgets (one for creates,
one for edits and deletes, as Discord reports them in X-RateLimit-Bucket) that interaction webhooks share,
the global limit (which interaction routes are exempt from), 429 bodies and headers.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The channel's message budgets: (method, route template) -> limit family. Creates and edits are separate
# buckets in Discord; deletes count with edits here (changes to an existing message).
_CHANNEL_MESSAGE_FAMILIES = {
    ("POST", "/channels/{channel_id}/messages"): "message_create",
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): "message_edit",
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): "message_edit",
}
# Webhook routes that write an interaction's message: they also spend its channel's budget of that kind.
_MESSAGE_WRITE_HANDLERS = {"webhook_execute": "message_create", "webhook_edit_message": "message_edit"}


def is_interaction_route(handler: str) -> bool:
    """Interaction callbacks and webhooks: authenticated by their token, exempt from the global limit."""
    return handler.startswith(("webhook_", "interaction_"))


def _bucket_hash(family: str) -> str:
    return hashlib.sha1(family.encode()).hexdigest()[:32]


@dataclass
class _Window:
    limit: int
    count: int
    reset_at: float  # monotonic


@dataclass
class BucketUse:
    key: str  # state key, e.g. "message_edit:123"
    family: str  # limit family, key into RateLimiter.bucket_limits ("global" for the global window)
    hash: str
    scope: str  # X-RateLimit-Scope if this bucket is the one that 429s


class RateLimiter:
    def __init__(self, global_limit: int, interaction_channel: Callable[[str], int | None]) -> None:
        """`interaction_channel(token)`: the channel of the interaction a webhook token belongs to."""
        self.global_limit = global_limit  # requests per second
        # family -> (limit, window seconds); tests may override entries before or during a run.
        self.bucket_limits: dict[str, tuple[int, float]] = {
            "message_create": (5, 5.0),
            "message_edit": (5, 5.0),
            "webhook": (5, 5.0),
            "reactions": (1, 0.25),
            "default": (50, 1.0),
        }
        self.rejected = 0  # requests answered with 429
        self._interaction_channel = interaction_channel
        self._windows: dict[str, _Window] = {}

    def uses(self, method: str, template: str, handler: str, params: dict[str, str]) -> list[BucketUse]:
        """The buckets one request spends, the global one first and the route's own last."""
        uses: list[BucketUse] = []
        if not is_interaction_route(handler):
            uses.append(BucketUse("global", "global", "", "global"))
        family = _CHANNEL_MESSAGE_FAMILIES.get((method, template))
        if family is not None:
            cid = params["channel_id"]
            uses.append(BucketUse(f"{family}:{cid}", family, _bucket_hash(family), "user"))
        elif "/reactions" in template and method in ("PUT", "DELETE"):
            cid = params["channel_id"]
            uses.append(BucketUse(f"reactions:{cid}", "reactions", _bucket_hash("reactions"), "user"))
        elif handler.startswith("webhook_"):
            token = params["token"]
            family = _MESSAGE_WRITE_HANDLERS.get(handler)
            if family is not None:
                channel_id = self._interaction_channel(token)
                if channel_id is not None:
                    # Interaction message writes share the channel's message budgets (scope: shared).
                    uses.append(BucketUse(f"{family}:{channel_id}", family, _bucket_hash(handler), "shared"))
            # One bucket per token and route: executing and editing report different buckets.
            uses.append(BucketUse(f"{handler}:{token}", "webhook", _bucket_hash(handler), "user"))
        else:
            major = params.get("channel_id") or params.get("guild_id") or params.get("token") or ""
            family = f"{method} {template}"
            uses.append(BucketUse(f"{family}:{major}", "default", _bucket_hash(family), "user"))
        return uses

    def spend(self, key: str, family: str) -> None:
        """Another client (a previous process of the bot, say) used up the bucket's current window."""
        limit, window = self.bucket_limits[family]
        now = time.monotonic()
        win = self._windows.get(key)
        if win is None or now >= win.reset_at:
            win = self._windows[key] = _Window(limit, 0, now + window)
        win.count = win.limit

    def take(self, uses: list[BucketUse], headers: dict[str, str]) -> dict[str, Any] | None:
        """Check every bucket; on success consume one from each and set headers of the tightest bucket.

        Returns the 429 body if any bucket is exhausted (then nothing is consumed)."""
        now = time.monotonic()
        windows: list[tuple[BucketUse, _Window]] = []
        for use in uses:
            limit, window = (
                (self.global_limit, 1.0)
                if use.family == "global"
                else self.bucket_limits.get(use.family, self.bucket_limits["default"])
            )
            win = self._windows.get(use.key)
            if win is None or now >= win.reset_at:
                win = self._windows[use.key] = _Window(limit, 0, now + window)
            windows.append((use, win))
        blocked = [(use, win) for use, win in windows if win.count >= win.limit]
        if blocked:
            self.rejected += 1
            use, win = max(blocked, key=lambda uw: uw[1].reset_at)
            retry_after = max(win.reset_at - now, 0.001)
            is_global = use.family == "global"
            headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": use.scope})
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            else:
                _set_headers(headers, use, win, now)
            return {
                "message": "You are being rate limited.",
                "retry_after": round(retry_after, 3),
                "global": is_global,
                "code": 0,
            }
        for _, win in windows:
            win.count += 1
        route = [(use, win) for use, win in windows if use.family != "global"]
        if route:
            # Numbers of the tightest bucket, but always the route's own (stable) hash.
            tightest = min(route, key=lambda uw: (uw[1].limit - uw[1].count, -uw[1].reset_at))[1]
            _set_headers(headers, route[-1][0], tightest, now)
        return None


def _set_headers(headers: dict[str, str], use: BucketUse, win: _Window, now: float) -> None:
    reset_after = max(win.reset_at - now, 0.0)
    headers.update(
        {
            "X-RateLimit-Limit": str(win.limit),
            "X-RateLimit-Remaining": str(max(win.limit - win.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": use.hash,
        }
    )
