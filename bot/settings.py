"""Per-channel settings: the keys, how user input is validated, and how overrides resolve (pure code)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import setting_values as values
from bot.setting_values import SettingError as SettingError  # re-exported: callers know it from here
from bot.streaming.options import ReasoningMode

SYSTEM_PROMPT_MAX = 4000
MAX_TOKENS_LIMIT = 32768
COOLDOWN_MAX = 3600
STREAMS_PER_USER_MAX = 100
CONTEXT_TOKENS_MIN, CONTEXT_TOKENS_MAX = 256, 2_000_000
_TRUE = frozenset({"true", "on", "yes"})
_FALSE = frozenset({"false", "off", "no"})
_EMPTY = values.EMPTY
REASONING_MODES = tuple(mode.value for mode in ReasoningMode)
REASONING_EFFORTS = ("low", "medium", "high")
# The one default system prompt (SYSTEM_PROMPT overrides it; .env.example shows the same text).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant in a Discord server."


@dataclass(frozen=True)
class ChannelSettings:
    model: str
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float = 0.7
    max_tokens: int | None = None
    enabled: bool = True
    history: int = 10
    cooldown_seconds: int = 0
    daily_token_quota: int | None = None
    max_streams_per_user: int = 2
    reasoning: ReasoningMode = ReasoningMode.HIDDEN
    reasoning_effort: str | None = None  # one of REASONING_EFFORTS; None: not sent
    vision: bool = True
    allowed_roles: list[int] = dataclasses.field(default_factory=list)
    blocked_roles: list[int] = dataclasses.field(default_factory=list)
    allowed_users: list[int] = dataclasses.field(default_factory=list)
    blocked_users: list[int] = dataclasses.field(default_factory=list)
    role_quotas: list[list[int | None]] = dataclasses.field(default_factory=list)  # [[role, tokens], ...]
    monthly_budget: float | None = None
    alert_channel: int | None = None
    prices: dict[str, list[float | None]] = dataclasses.field(default_factory=dict)
    fallback_model: str | None = None
    context_tokens: int = 8000
    reply_in_thread: bool = False
    user_models: list[int] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Key:
    """What /config needs to know about a setting key, besides parsing and formatting its value."""

    description: str
    choices: tuple[str, ...] = ()  # the words it takes (on/off, modes), offered as the value's autocomplete
    accepts_none: bool = False  # "none" clears it: no limit, nobody listed, not sent
    model: bool = False  # a model name, checked against the model server's list when set
    server_only: bool = False  # about the whole server (one budget, one bill): no channel override
    channel: bool = False  # a channel id, which must be a channel of the same server

    @property
    def suggestions(self) -> list[str]:
        """The values offered as autocomplete (a model key adds the model server's list)."""
        return [*self.choices, *(["none"] if self.accepts_none else [])]


_ON_OFF = ("on", "off")
KEYS: dict[str, Key] = {
    "model": Key("Model used for replies (must be offered by the API)", model=True),
    "system_prompt": Key(f"Instructions sent before the conversation (up to {SYSTEM_PROMPT_MAX} characters)"),
    "temperature": Key("Sampling temperature, 0 (focused) to 2 (random)"),
    "max_tokens": Key(
        f"Longest reply in tokens, 1 to {MAX_TOKENS_LIMIT}, or none for the model's limit", accepts_none=True
    ),
    "enabled": Key("Whether the bot answers here: on or off", choices=_ON_OFF),
    "history": Key("How many earlier messages to include as context, 0 to 50"),
    "cooldown_seconds": Key(f"Seconds a user must wait between requests, 0 to {COOLDOWN_MAX}"),
    "daily_token_quota": Key("Tokens a user may spend per UTC day, or none for unlimited", accepts_none=True),
    "max_streams_per_user": Key(
        f"Answers one user may have in progress at once, 1 to {STREAMS_PER_USER_MAX}"
    ),
    "reasoning": Key(
        "A reasoning model's thinking: hidden, summary (how long it thought) or file (attached)",
        choices=REASONING_MODES,
    ),
    "reasoning_effort": Key(
        "How hard a reasoning model thinks: low, medium, high, or none to not ask",
        choices=REASONING_EFFORTS,
        accepts_none=True,
    ),
    "vision": Key("Whether attached images go to the model: on or off", choices=_ON_OFF),
    "allowed_roles": Key(
        "Only members with one of these roles may ask (or allowed_users); none = everyone", accepts_none=True
    ),
    "blocked_roles": Key("Members with any of these roles may not ask", accepts_none=True),
    "allowed_users": Key("Only these members may ask (or allowed_roles); none = everyone", accepts_none=True),
    "blocked_users": Key("These members may not ask", accepts_none=True),
    "role_quotas": Key(
        "Tokens a day per role, e.g. @Helpers=50000, @Staff=none; the most generous applies",
        accepts_none=True,
    ),
    "monthly_budget": Key(
        "Server only: spend per calendar month (UTC) before answers stop, or none",
        accepts_none=True,
        server_only=True,
    ),
    "alert_channel": Key(
        "Server only: where budget warnings go (at 80 % and 100 %), or none",
        accepts_none=True,
        server_only=True,
        channel=True,
    ),
    "prices": Key(
        "Server only: model=input/output[/reasoning] per million tokens, beating the price file",
        accepts_none=True,
        server_only=True,
    ),
    "fallback_model": Key(
        "Model asked when the main one fails before answering, or none", accepts_none=True, model=True
    ),
    "context_tokens": Key(
        f"Most tokens of conversation sent to the model, {CONTEXT_TOKENS_MIN} to {CONTEXT_TOKENS_MAX}"
    ),
    "reply_in_thread": Key("Whether /chat answers in a new thread by default: on or off", choices=_ON_OFF),
    "user_models": Key(
        "Server only: users who may pick a model with /chat model:, or none (admins only)",
        accepts_none=True,
        server_only=True,
    ),
}
SERVER_ONLY = frozenset(name for name, key in KEYS.items() if key.server_only)


def _int_in(key: str, low: int, high: int | None, raw: str, *, optional: bool = False) -> int | None:
    text = raw.strip()
    if optional and text.lower() in _EMPTY:
        return None
    if high is None:
        expected = f"{key} must be a whole number of at least {low}"
    else:
        expected = f"{key} must be a whole number from {low} to {high}"
    if optional:
        expected += ", or none"
    try:
        value = int(text)
    except ValueError:
        raise SettingError(expected) from None
    if value < low or (high is not None and value > high):
        raise SettingError(expected)
    return value


def _model(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 200 or any(c.isspace() for c in value):
        raise SettingError("model must be a model name like gpt-4o-mini")
    return value


def _fallback_model(raw: str) -> str | None:
    if raw.strip().lower() in _EMPTY:
        return None
    try:
        return _model(raw)
    except SettingError:
        raise SettingError("fallback_model must be a model name like gpt-4o-mini, or none") from None


def _system_prompt(raw: str) -> str:
    value = raw.strip()
    if len(value) > SYSTEM_PROMPT_MAX:
        raise SettingError(f"system_prompt must be at most {SYSTEM_PROMPT_MAX} characters (got {len(value)})")
    return value


def _temperature(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingError("temperature must be a number between 0 and 2") from None
    if not math.isfinite(value) or not 0 <= value <= 2:
        raise SettingError("temperature must be between 0 and 2")
    return value


def _switch(key: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingError(f"{key} must be on or off (true/false, yes/no also work)")


def _choice(key: str, choices: tuple[str, ...], raw: str, *, optional: bool = False) -> str | None:
    text = raw.strip().lower()
    if optional and text in _EMPTY:
        return None
    if text not in choices:
        raise SettingError(f"{key} must be one of {', '.join(choices)}{', or none' if optional else ''}")
    return text


def _reasoning(raw: str) -> ReasoningMode:
    choice = _choice("reasoning", REASONING_MODES, raw)
    assert choice is not None  # not optional
    return ReasoningMode(choice)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": _model,
    "system_prompt": _system_prompt,
    "temperature": _temperature,
    "max_tokens": lambda raw: _int_in("max_tokens", 1, MAX_TOKENS_LIMIT, raw, optional=True),
    "enabled": lambda raw: _switch("enabled", raw),
    "history": lambda raw: _int_in("history", 0, 50, raw),
    "cooldown_seconds": lambda raw: _int_in("cooldown_seconds", 0, COOLDOWN_MAX, raw),
    "daily_token_quota": lambda raw: _int_in("daily_token_quota", 1, None, raw, optional=True),
    "max_streams_per_user": lambda raw: _int_in("max_streams_per_user", 1, STREAMS_PER_USER_MAX, raw),
    "reasoning": _reasoning,
    "reasoning_effort": lambda raw: _choice("reasoning_effort", REASONING_EFFORTS, raw, optional=True),
    "vision": lambda raw: _switch("vision", raw),
    "allowed_roles": lambda raw: values.parse_ids("role", raw),
    "blocked_roles": lambda raw: values.parse_ids("role", raw),
    "allowed_users": lambda raw: values.parse_ids("user", raw),
    "blocked_users": lambda raw: values.parse_ids("user", raw),
    "role_quotas": values.parse_role_quotas,
    "monthly_budget": values.parse_money,
    "alert_channel": values.parse_channel,
    "prices": values.parse_prices,
    "fallback_model": _fallback_model,
    "context_tokens": lambda raw: _int_in("context_tokens", CONTEXT_TOKENS_MIN, CONTEXT_TOKENS_MAX, raw),
    "reply_in_thread": lambda raw: _switch("reply_in_thread", raw),
    "user_models": lambda raw: values.parse_ids("user", raw),
}
_FORMATS: dict[str, Callable[[Any], str]] = {
    "allowed_roles": lambda ids: values.format_ids("role", ids),
    "blocked_roles": lambda ids: values.format_ids("role", ids),
    "allowed_users": lambda ids: values.format_ids("user", ids),
    "blocked_users": lambda ids: values.format_ids("user", ids),
    "user_models": lambda ids: values.format_ids("user", ids),
    "role_quotas": values.format_role_quotas,
    "alert_channel": lambda channel: values.format_ids("channel", [channel]),
    "prices": values.format_prices,
}


def check_key(key: str) -> str:
    """Normalise a key typed by a user, or raise SettingError naming the valid keys."""
    normalised = key.strip().lower()
    if normalised not in KEYS:
        raise SettingError(f"Unknown setting `{key[:50]}`. Valid settings: {', '.join(KEYS)}")
    return normalised


def parse_value(key: str, raw: str) -> Any:
    """Validate user input for ``key``; returns the typed value (None = no limit for the optional limits)."""
    return _PARSERS[check_key(key)](raw)


def check_channel(key: str, value: Any, is_channel_here: Callable[[int], bool]) -> None:
    """A key naming a channel (alert_channel) must name one of this server's: warnings must not go to
    another server's channel."""
    if KEYS[key].channel and value is not None and not is_channel_here(value):
        raise SettingError(f"`{key}` must be a channel of this server")


def check_scope(key: str, scope: str) -> None:
    """Server-only settings refuse a channel override."""
    if key in SERVER_ONLY and scope == "channel":
        raise SettingError(f"`{key}` applies to the whole server: set it with scope server")


def format_value(key: str, value: Any) -> str:
    """Render a stored value the way a user would type it."""
    if value is None:
        return "none"
    if key in _FORMATS:
        return _FORMATS[key](value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "system_prompt" and value == "":
        return "(empty)"
    return str(value)


def resolve(
    defaults: ChannelSettings, guild: Mapping[str, Any], channel: Mapping[str, Any]
) -> ChannelSettings:
    """Channel overrides beat server overrides beat defaults; unknown keys (from newer code) are ignored, and
    so are channel values of server-only keys."""
    merged = {k: v for k, v in guild.items() if k in KEYS}
    merged.update((k, v) for k, v in channel.items() if k in KEYS and k not in SERVER_ONLY)
    if "reasoning" in merged:  # stored as its text
        merged["reasoning"] = ReasoningMode(merged["reasoning"])
    return dataclasses.replace(defaults, **merged)
