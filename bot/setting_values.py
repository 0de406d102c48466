"""Parsers and formats for the setting values that are more than a word: Discord ids (typed as ids or
mentions), per-role quotas, money, prices. Pure code; bot/settings.py maps setting keys onto these."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

from bot.pricing import PriceError, overrides_from_json, overrides_to_json, parse_overrides

IdKind = Literal["role", "user", "channel"]
# How Discord writes a mention of each kind; a bare id is accepted too.
_MENTION: dict[IdKind, re.Pattern[str]] = {
    "role": re.compile(r"^(?:<@&(\d+)>|(\d+))$"),
    "user": re.compile(r"^(?:<@!?(\d+)>|(\d+))$"),
    "channel": re.compile(r"^(?:<#(\d+)>|(\d+))$"),
}
_PREFIX: dict[IdKind, str] = {"role": "<@&", "user": "<@", "channel": "<#"}
# Words that clear a value; Discord can't send an empty required option, so "none" matters.
EMPTY = frozenset({"", "none", "unlimited"})
MAX_IDS = 100


class SettingError(ValueError):
    """Invalid setting key or value; str(error) is a short message fit to show the user."""


def parse_id(kind: IdKind, token: str) -> int:
    match = _MENTION[kind].match(token.strip())
    if match is None:
        raise SettingError(f"`{token[:40]}` is not a {kind} (mention it or give its id)")
    value = int(match.group(1) or match.group(2))
    if not 0 < value < 2**63:
        raise SettingError(f"`{token[:40]}` is not a valid {kind} id")
    return value


def _items(raw: str) -> list[str]:
    # Mentions pasted from Discord come space-separated; typed lists usually use commas.
    return [t for t in re.split(r"[\s,;]+", raw.strip()) if t]


def parse_ids(kind: IdKind, raw: str) -> list[int]:
    """`<@&1> <@&2>`, `1, 2` or `none` (an empty list: the rule is off)."""
    if raw.strip().lower() in EMPTY:
        return []
    ids = list(dict.fromkeys(parse_id(kind, token) for token in _items(raw)))
    if len(ids) > MAX_IDS:
        raise SettingError(f"at most {MAX_IDS} {kind}s")
    return ids


def format_ids(kind: IdKind, ids: Sequence[int]) -> str:
    return ", ".join(f"{_PREFIX[kind]}{i}>" for i in ids) if ids else "none"


def parse_channel(raw: str) -> int | None:
    return None if raw.strip().lower() in EMPTY else parse_id("channel", raw)


def parse_role_quotas(raw: str) -> list[list[int | None]]:
    """`<@&1>=50000, <@&2>=none`: tokens a day per role (none = unlimited); stored as [[role, quota], ...]
    since JSON object keys would turn the role ids into strings."""
    if raw.strip().lower() in EMPTY:
        return []
    quotas: dict[int, int | None] = {}
    for item in filter(None, (part.strip() for part in re.split(r"[,;\n]", raw))):
        role, sep, amount = item.partition("=")
        if not sep:
            raise SettingError(f"`{item[:40]}` is not role=tokens (e.g. <@&123>=50000 or <@&123>=none)")
        quotas[parse_id("role", role)] = parse_quota(amount)
    if len(quotas) > MAX_IDS:
        raise SettingError(f"at most {MAX_IDS} roles")
    return [[role, quota] for role, quota in quotas.items()]


def parse_quota(raw: str) -> int | None:
    text = raw.strip().lower()
    if text in EMPTY:
        return None
    try:
        value = int(text)  # int() takes 50_000 too
    except ValueError:
        raise SettingError(f"`{raw.strip()[:40]}` is not a whole number of tokens, or none") from None
    if value < 0:
        raise SettingError("a quota can't be negative")
    return value


def format_role_quotas(quotas: Sequence[Sequence[int | None]]) -> str:
    if not quotas:
        return "none"
    return ", ".join(f"<@&{role}>={'none' if quota is None else quota}" for role, quota in quotas)


def parse_money(raw: str) -> float | None:
    text = raw.strip().lower()
    if text in EMPTY:
        return None
    try:
        value = float(text.lstrip("$€£"))
    except ValueError:
        raise SettingError("monthly_budget must be an amount like 25 or 12.50, or none") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingError("monthly_budget must be more than 0, or none")
    return round(value, 2)


def parse_prices(raw: str) -> dict[str, list[float | None]]:
    if raw.strip().lower() in EMPTY:
        return {}
    try:
        return overrides_to_json(parse_overrides(raw))
    except PriceError as exc:
        raise SettingError(str(exc)) from None


def format_prices(stored: dict[str, list[float | None]]) -> str:
    overrides = overrides_from_json(stored)
    return ", ".join(f"{model}={price.text()}" for model, price in overrides.items()) or "none"
