"""A server's settings as a JSON file: export, and import that validates every key and value first and
then applies all of them or none (the store writes them in one transaction, audited)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from bot.settings import SettingError, check_channel, check_key, check_scope, format_value, parse_value
from bot.store.settings import Overrides, SettingsStore

FORMAT = "streamcord-settings"
VERSION = 1
MAX_BYTES = 256 * 1024
MAX_PROBLEMS = 10  # listed in the refusal; more are counted


class ImportRefused(Exception):
    """The file can't be imported; ``problems`` say why, each fit to show an admin."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _as_text(key: str, value: Any) -> str:
    # What an admin would type, so an import goes through the same validation as /config set.
    return "" if value == "" else format_value(key, value)


async def export(store: SettingsStore, guild_id: int) -> bytes:
    overrides = await store.guild_overrides(guild_id)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "server": {key: _as_text(key, value) for key, value in overrides.server.items()},
        "channels": {
            str(channel_id): {key: _as_text(key, value) for key, value in values.items()}
            for channel_id, values in sorted(overrides.channels.items())
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def parse(data: bytes, is_channel_here: Callable[[int], bool]) -> Overrides:
    """Every override the file sets, validated (typed values), or ImportRefused listing what is wrong."""
    if len(data) > MAX_BYTES:
        raise ImportRefused([f"the file is larger than {MAX_BYTES // 1024} KB"])
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ImportRefused(["the file is not JSON (export one with /config export)"]) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ImportRefused(["the file is not a Streamcord settings export"])
    if document.get("version") != VERSION:
        raise ImportRefused([f"settings export version {document.get('version')!r} is not supported"])
    problems: list[str] = []
    server = _scope_values("server", "guild", document.get("server", {}), problems, is_channel_here)
    channels: dict[int, dict[str, Any]] = {}
    raw_channels = document.get("channels", {})
    if not isinstance(raw_channels, dict):
        raw_channels, problems = {}, [*problems, "`channels` must map channel ids to settings"]
    for raw_id, raw_values in raw_channels.items():
        if not str(raw_id).isdigit() or not is_channel_here(int(raw_id)):
            problems.append(f"channel {str(raw_id)[:30]} is not a channel of this server")
            continue
        channels[int(raw_id)] = _scope_values(
            f"channel {raw_id}", "channel", raw_values, problems, is_channel_here
        )
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise ImportRefused(problems[:MAX_PROBLEMS] + ([f"and {more} more"] if more > 0 else []))
    return Overrides(server, channels)


def _scope_values(
    where: str, scope: str, raw: object, problems: list[str], is_channel_here: Callable[[int], bool]
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected settings as key/value pairs")
        return {}
    values: dict[str, Any] = {}
    for raw_key, raw_value in raw.items():
        try:
            key = check_key(str(raw_key))
            check_scope(key, scope)
            if not isinstance(raw_value, str):
                raise SettingError(f"`{key}` must be given as text, like /config set takes it")
            values[key] = parse_value(key, raw_value)
            check_channel(key, values[key], is_channel_here)
        except SettingError as exc:
            problems.append(f"{where}: {exc}")
    return values
