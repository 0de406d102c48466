"""What a Discord REST request costs, worked out from its method and path: ``Route``.

``Route.of(method, path)`` is the one derivation: the aiohttp trace applies it to every real request, and the
named constructors (``Route.create_message(...)`` etc.) apply it to the path discord.py will send, so a job's
declared route and the request it paces agree by construction.

A route key is ``"<METHOD> <template>"`` plus ``":<major parameters>"`` when the path has any, e.g.
``Route.of("PATCH", "/channels/1/messages/2").key == "PATCH /channels/{channel_id}/messages/{message_id}:1"``.
As in discord.py's ``Route``, major parameters (channel, guild, webhook id + token) are kept because Discord
keeps a separate bucket per value, and minor ids are replaced by placeholders. Webhook and interaction tokens
are secrets, so keys and logs only ever carry a short hash of them. Adding and removing a reaction share
one key (``"REACTION /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}:1"``), as they
share one Discord bucket, whose limit ``known_bucket`` gives before any response reports it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ChannelBudget",
    "MessageWrite",
    "Route",
    "api_path",
    "known_bucket",
    "major_parameters",
    "redact",
    "token_hash",
    "webhook_scope",
]

# Accepts full URLs ("http://host/api/v10/...") as well as bare API paths.
_PREFIX_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://[^/]+)?(?P<api>/api(?:/v\d+)?)?", re.IGNORECASE)
# The segment after /webhooks/<id>/ or /interactions/<id>/ is always a token.
_TOKEN_RE = re.compile(r"(?P<lead>/(?:webhooks|interactions)/\d+/)(?P<token>[^/?#\s]+)")
_SNOWFLAKE_RE = re.compile(r"^\d+$")
_WEBHOOK_KEY_RE = re.compile(r"^(?:POST|PATCH|DELETE) /webhooks/\{webhook_id\}/\{webhook_token\}")

# Name given to the id that follows these collection segments (cosmetic; position is what matters).
_MINOR_NAMES = {
    "messages": "{message_id}",
    "users": "{user_id}",
    "members": "{user_id}",
    "roles": "{role_id}",
    "emojis": "{emoji_id}",
    "stickers": "{sticker_id}",
    "commands": "{command_id}",
    "applications": "{application_id}",
}
_MESSAGE_BUDGET_METHODS = frozenset({"POST", "PATCH", "DELETE"})
# Adding and removing one reaction (the bot's own or anyone's) share one bucket per channel on Discord, which
# says so (X-RateLimit-Bucket) only once each has been answered, and a REST proxy never: one key for both.
_REACTION_METHODS = frozenset({"PUT", "DELETE"})
_REACTION_TAIL = ["reactions", "{emoji}"]
_REACTION = "REACTION"
# That bucket's limit, 1 per 0.25 s (observed; Discord does not document it): paced before any header says.
_REACTION_BUCKET = (1, 0.25)


def token_hash(token: str) -> str:
    """Stable, non-reversible stand-in for a webhook/interaction token."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _segments(path: str) -> tuple[list[str], bool]:
    """Split a URL or API path into segments after the /api/vN prefix; also report whether it had one."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    match = _PREFIX_RE.match(path)
    assert match is not None  # the pattern can match the empty string
    rest = path[match.end() :]
    return [seg for seg in rest.split("/") if seg], match.group("api") is not None


def api_path(url: str) -> str | None:
    """The path after ``/api[/vN]`` of a full URL, or None when the URL is not a Discord API request
    (CDN downloads, the gateway websocket)."""
    segments, is_api = _segments(url)
    if not is_api:
        return None
    return "/" + "/".join(segments)


def _parse(path: str) -> tuple[list[str], list[str]]:
    """Return the template segments and the major parameter values of a path."""
    segs, _ = _segments(path)
    template: list[str] = []
    major: list[str] = []
    i = 0
    while i < len(segs):
        seg = segs[i]
        prev = segs[i - 1] if i else ""
        if prev == "channels" and _SNOWFLAKE_RE.match(seg):
            template.append("{channel_id}")
            major.append(seg)
        elif prev == "guilds" and _SNOWFLAKE_RE.match(seg):
            template.append("{guild_id}")
            major.append(seg)
        elif prev in ("webhooks", "interactions") and _SNOWFLAKE_RE.match(seg):
            # Interaction callbacks use the same (id, token) major pair as webhooks in discord.py.
            template.append("{webhook_id}")
            major.append(seg)
            if i + 1 < len(segs):
                i += 1
                template.append("{webhook_token}")
                major.append(token_hash(segs[i]))
        elif prev == "reactions":
            template.append("{emoji}")
        elif _SNOWFLAKE_RE.match(seg):
            template.append(_MINOR_NAMES.get(prev, "{id}"))
        else:
            template.append(seg)
        i += 1
    return template, major


def _route_key(method: str, path: str) -> str:
    """Stable bucket key for a request; never contains a raw token."""
    template, major = _parse(path)
    if method in _REACTION_METHODS and template[-3:-1] == _REACTION_TAIL:
        method, template[-1] = _REACTION, "{user}"
    key = f"{method} /{'/'.join(template)}"
    return f"{key}:{'+'.join(major)}" if major else key


def major_parameters(key: str) -> str:
    """The major-parameter part of a route key ('' if none); Discord buckets are per hash + this."""
    _, sep, major = key.partition(":")
    return major if sep else ""


def webhook_scope(key: str) -> str | None:
    """The webhook (id and token hash) of a route key that writes messages through one, else None. Its path
    names no channel, yet every message it writes lands in the one channel of its interaction."""
    return major_parameters(key) if _WEBHOOK_KEY_RE.match(key) else None


def known_bucket(key: str) -> tuple[int, float] | None:
    """(limit, window in seconds) of a route key's bucket when known before any response, else None."""
    return _REACTION_BUCKET if key.startswith(f"{_REACTION} ") else None


def _uses_global(path: str) -> bool:
    """Whether the request counts against the bot's global limit: interaction callbacks and
    token-authenticated webhook routes (interaction follow-ups) do not."""
    segs, _ = _segments(path)
    if len(segs) >= 3 and segs[0] in ("webhooks", "interactions") and _SNOWFLAKE_RE.match(segs[1]):
        return False
    return True


def _message_budget_channel(method: str, path: str) -> int | None:
    """Channel id whose "channel messages" budget this request spends (message create/edit/delete)."""
    if method not in _MESSAGE_BUDGET_METHODS:
        return None
    segs, _ = _segments(path)
    if len(segs) < 3 or segs[0] != "channels" or segs[2] != "messages" or not _SNOWFLAKE_RE.match(segs[1]):
        return None
    if len(segs) == 3 and method == "POST":
        return int(segs[1])
    if len(segs) == 4 and method != "POST" and _SNOWFLAKE_RE.match(segs[3]):
        return int(segs[1])
    return None


class MessageWrite(enum.Enum):
    """Which of a channel's two message budgets a write spends: Discord reports creates and edits (deletes
    count with edits) as different buckets, each about 5 per 5 s."""

    CREATE = "create"
    EDIT = "edit"


# One channel's budget of one kind: what a pacer lane spends.
ChannelBudget = tuple[int, MessageWrite]


@dataclass(frozen=True, slots=True)
class Route:
    """What one request costs: the channel whose message budget it spends (None: none) and which of its
    budgets (``write``), its bucket key, and whether the bot's global limit counts it."""

    channel_id: int | None
    key: str
    uses_global: bool
    write: MessageWrite = MessageWrite.EDIT

    @property
    def channel_budget(self) -> ChannelBudget | None:
        """The channel budget this request spends, if any."""
        return None if self.channel_id is None else (self.channel_id, self.write)

    @staticmethod
    @functools.lru_cache(maxsize=8192)  # streams ask for the same few routes on every token
    def of(method: str, path: str) -> Route:
        """The route of ``method`` on ``path`` (a bare API path or a full URL); never holds a raw token."""
        method = method.upper()
        write = MessageWrite.CREATE if method == "POST" else MessageWrite.EDIT
        return Route(
            _message_budget_channel(method, path), _route_key(method, path), _uses_global(path), write
        )

    @staticmethod
    def create_message(channel_id: int) -> Route:
        return Route.of("POST", f"/channels/{channel_id}/messages")

    @staticmethod
    def edit_message(channel_id: int, message_id: int) -> Route:
        return Route.of("PATCH", f"/channels/{channel_id}/messages/{message_id}")

    @staticmethod
    def fetch_message(channel_id: int, message_id: int) -> Route:
        return Route.of("GET", f"/channels/{channel_id}/messages/{message_id}")

    @staticmethod
    def list_messages(channel_id: int) -> Route:
        return Route.of("GET", f"/channels/{channel_id}/messages")

    @staticmethod
    def thread_from_message(channel_id: int, message_id: int) -> Route:
        return Route.of("POST", f"/channels/{channel_id}/messages/{message_id}/threads")

    @staticmethod
    def reaction_add(channel_id: int, message_id: int, emoji: str) -> Route:
        """The bot's own reaction."""
        return Route.of("PUT", f"/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")

    @staticmethod
    def reaction_remove(channel_id: int, message_id: int, emoji: str, user_id: int | None = None) -> Route:
        """Someone's reaction, or the bot's own (``user_id`` None); the same bucket as adding one."""
        user = "@me" if user_id is None else user_id
        return Route.of("DELETE", f"/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}")

    @staticmethod
    def interaction_callback(interaction_id: int, token: str) -> Route:
        return Route.of("POST", f"/interactions/{interaction_id}/{token}/callback")

    @staticmethod
    def webhook_create(application_id: int, token: str, *, channel_id: int) -> Route:
        """A follow-up message in ``channel_id``: the path names no channel, but it spends that channel's
        message budget."""
        return Route.of("POST", f"/webhooks/{application_id}/{token}").spending(channel_id)

    @staticmethod
    def webhook_edit(
        application_id: int, token: str, message_id: int | Literal["@original"], *, channel_id: int
    ) -> Route:
        """An edit of the interaction's response (``"@original"``) or of a follow-up in ``channel_id``."""
        path = f"/webhooks/{application_id}/{token}/messages/{message_id}"
        return Route.of("PATCH", path).spending(channel_id)

    def spending(self, channel_id: int) -> Route:
        """This route, declared to spend ``channel_id``'s message budget (for paths that name no channel)."""
        return dataclasses.replace(self, channel_id=channel_id)


def redact(text: str) -> str:
    """Replace every webhook/interaction token in a path, URL or message by its hash, for logs."""
    return _TOKEN_RE.sub(lambda m: f"{m.group('lead')}<token:{token_hash(m.group('token'))}>", text)
