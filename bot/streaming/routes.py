"""Pure helpers that map Discord REST requests to rate-limit route keys.

A route key is ``"<METHOD> <template>"`` plus ``":<major parameters>"`` when the path has any, e.g.
``route_key("PATCH", "/channels/1/messages/2") == "PATCH /channels/{channel_id}/messages/{message_id}:1"``.
As in discord.py's ``Route``, major parameters (channel, guild, webhook id + token) are kept because Discord
keeps a separate bucket per value, and minor ids are replaced by placeholders. Webhook and interaction tokens
are secrets, so keys and logs only ever carry a short hash of them.
"""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = [
    "api_path",
    "major_parameters",
    "message_budget_channel",
    "redact",
    "route_key",
    "token_hash",
    "uses_global",
]

# Accepts full URLs ("http://host/api/v10/...") as well as bare API paths.
_PREFIX_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://[^/]+)?(?P<api>/api(?:/v\d+)?)?", re.IGNORECASE)
# The segment after /webhooks/<id>/ or /interactions/<id>/ is always a token.
_TOKEN_RE = re.compile(r"(?P<lead>/(?:webhooks|interactions)/\d+/)(?P<token>[^/?#\s]+)")
_SNOWFLAKE_RE = re.compile(r"^\d+$")

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


@functools.lru_cache(maxsize=8192)  # streams ask for the same few routes on every token
def route_key(method: str, path: str) -> str:
    """Stable bucket key for a request; never contains a raw token."""
    template, major = _parse(path)
    key = f"{method.upper()} /{'/'.join(template)}"
    return f"{key}:{'+'.join(major)}" if major else key


def major_parameters(key: str) -> str:
    """The major-parameter part of a route key ('' if none); Discord buckets are per hash + this."""
    _, sep, major = key.partition(":")
    return major if sep else ""


def uses_global(method: str, path: str) -> bool:
    """Whether the request counts against the bot's global limit: interaction callbacks and
    token-authenticated webhook routes (interaction follow-ups) do not."""
    segs, _ = _segments(path)
    if len(segs) >= 3 and segs[0] in ("webhooks", "interactions") and _SNOWFLAKE_RE.match(segs[1]):
        return False
    return True


def message_budget_channel(method: str, path: str) -> int | None:
    """Channel id whose "channel messages" budget this request spends (message create/edit/delete)."""
    if method.upper() not in _MESSAGE_BUDGET_METHODS:
        return None
    segs, _ = _segments(path)
    if len(segs) < 3 or segs[0] != "channels" or segs[2] != "messages" or not _SNOWFLAKE_RE.match(segs[1]):
        return None
    if len(segs) == 3 and method.upper() == "POST":
        return int(segs[1])
    if len(segs) == 4 and method.upper() != "POST" and _SNOWFLAKE_RE.match(segs[3]):
        return int(segs[1])
    return None


def redact(text: str) -> str:
    """Replace every webhook/interaction token in a path, URL or message by its hash, for logs."""
    return _TOKEN_RE.sub(lambda m: f"{m.group('lead')}<token:{token_hash(m.group('token'))}>", text)
