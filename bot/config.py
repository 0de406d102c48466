"""The one place configuration comes from: the environment, plus an optional `.env` file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.db.location import DatabaseLocation, is_postgres_url
from bot.pricing import DEFAULT_PRICES_FILE, PriceError, PriceList
from bot.settings import DEFAULT_SYSTEM_PROMPT, ChannelSettings, SettingError, parse_value
from bot.shard_plan import ShardPlan, parse_shard_plan


class ConfigError(Exception):
    """A missing or malformed variable; the message names it and is shown to the operator as is."""


@dataclass(frozen=True)
class Config:
    discord_token: str = field(repr=False)
    openai_api_key: str = field(repr=False)
    openai_base_url: str
    defaults: ChannelSettings
    database: DatabaseLocation
    log_level: str = "INFO"
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    llm_timeout: float = 60.0
    llm_max_retries: int = 2
    llm_retry_budget: float = 20.0
    circuit_failures: int = 5
    circuit_cool_down: float = 30.0
    global_rate_limit: int = 50
    max_concurrent_streams: int | None = None  # None: as many as the process keeps up with
    max_reply_pages: int = 8  # an answer stops, labelled, when it would need more messages than this
    llm_deadline: float = 600.0  # seconds an answer may take overall, keep-alives or not
    shards: ShardPlan = field(default_factory=ShardPlan)
    prices: PriceList = field(default_factory=lambda: PriceList("USD", {}))
    usage_retention_days: int | None = None  # None: keep every usage row
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no /metrics or /healthz server
    message_content_intent: bool = False  # privileged: plain messages in the bot's threads are answered
    allow_dms: bool = False


_DEFAULT_DATABASE = "data/streamcord.sqlite3"
# Behind a REST proxy the global budget is the proxy's: the process spends none of its own (see README).
_GLOBAL_LIMIT_BEHIND_PROXY = "10000"
_TRUE = {"1", "true", "yes", "on"}
_REQUIRED = ("DISCORD_TOKEN", "DEFAULT_MODEL")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# At DEBUG these print interaction tokens, user prompts, and SQL parameters (aiosqlite: system prompts).
_QUIET_LOGGERS = (
    "discord.http",
    "discord.webhook",
    "discord.gateway",
    "openai",
    "httpx2",
    "httpcore2",
    "aiosqlite",
)


def load_config(env: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> Config:
    """Build the Config; real environment variables win over `.env` values."""
    if env is None:
        merged = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        merged.update(os.environ)
        env = merged

    missing = [name for name in _REQUIRED if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.")

    def get(name: str, default: str | None = None) -> str:
        value = env.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is not set.")
        return default

    def number(name: str, default: str, kind: type[int] | type[float], low: float, high: float) -> float:
        raw = get(name, default)
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}.") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}.")
        return value

    def setting(key: str, name: str, default: str) -> Any:
        try:
            return parse_value(key, get(name, default))
        except SettingError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def switch(name: str) -> bool:
        raw = get(name, "false").lower()
        if raw not in ("true", "false"):
            raise ConfigError(f"{name} must be true or false, got {raw!r}.")
        return raw == "true"

    base_url = get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"OPENAI_BASE_URL must start with http:// or https://, got {base_url!r}.")
    api_base = env.get("DISCORD_API_BASE", "").strip().rstrip("/") or None
    if api_base and not api_base.startswith(("http://", "https://")):
        raise ConfigError(f"DISCORD_API_BASE must start with http:// or https://, got {api_base!r}.")
    gateway = env.get("DISCORD_GATEWAY_URL", "").strip() or None
    if gateway and not gateway.startswith(("ws://", "wss://")):
        raise ConfigError(f"DISCORD_GATEWAY_URL must start with ws:// or wss://, got {gateway!r}.")
    behind_proxy = env.get("DISCORD_REST_PROXY", "").strip().lower() in _TRUE
    if behind_proxy and not api_base:
        raise ConfigError("DISCORD_REST_PROXY is set but DISCORD_API_BASE does not name the proxy.")
    try:
        shards = parse_shard_plan(env.get("SHARD_COUNT", "").strip(), env.get("SHARD_IDS", "").strip())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    level = get("LOG_LEVEL", "INFO").upper()
    if level not in _LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(sorted(_LEVELS))}, got {level!r}.")

    def optional_number(name: str, low: int, high: int) -> int | None:
        return int(number(name, "0", int, low, high)) if env.get(name, "").strip() else None

    try:
        prices = PriceList.load(Path(get("PRICES_FILE", str(DEFAULT_PRICES_FILE))))
    except PriceError as exc:
        raise ConfigError(f"PRICES_FILE: {exc}") from None

    defaults = ChannelSettings(
        model=get("DEFAULT_MODEL"),
        system_prompt=setting("system_prompt", "SYSTEM_PROMPT", DEFAULT_SYSTEM_PROMPT),
        temperature=setting("temperature", "TEMPERATURE", "0.7"),
        max_tokens=setting("max_tokens", "MAX_TOKENS", "1024"),
        enabled=True,
        history=setting("history", "HISTORY_TURNS", "10"),
        cooldown_seconds=setting("cooldown_seconds", "COOLDOWN_SECONDS", "0"),
        daily_token_quota=setting("daily_token_quota", "DAILY_TOKEN_QUOTA", ""),
        max_streams_per_user=setting("max_streams_per_user", "MAX_STREAMS_PER_USER", "2"),
        context_tokens=setting("context_tokens", "CONTEXT_TOKENS", "8000"),
    )
    return Config(
        discord_token=get("DISCORD_TOKEN"),
        openai_api_key=get("OPENAI_API_KEY", "not-needed"),
        openai_base_url=base_url,
        defaults=defaults,
        database=database_location(env),
        log_level=level,
        discord_api_base=api_base,
        discord_gateway_url=gateway,
        llm_timeout=number("LLM_TIMEOUT", "60", float, 1, 600),
        llm_max_retries=int(number("LLM_MAX_RETRIES", "2", int, 0, 10)),
        llm_retry_budget=number("LLM_RETRY_BUDGET", "20", float, 0, 600),
        circuit_failures=int(number("LLM_CIRCUIT_FAILURES", "5", int, 1, 1000)),
        circuit_cool_down=number("LLM_CIRCUIT_COOLDOWN", "30", float, 0.01, 3600),
        global_rate_limit=int(
            number(
                "DISCORD_GLOBAL_RATE_LIMIT",
                _GLOBAL_LIMIT_BEHIND_PROXY if behind_proxy else "50",
                int,
                1,
                10_000,
            )
        ),
        max_concurrent_streams=(
            int(number("MAX_CONCURRENT_STREAMS", "", int, 1, 100_000))
            if get("MAX_CONCURRENT_STREAMS", "")
            else None
        ),
        max_reply_pages=int(number("MAX_REPLY_PAGES", "8", int, 1, 100)),
        llm_deadline=number("LLM_DEADLINE", "600", float, 1, 86_400),
        shards=shards,
        prices=prices,
        usage_retention_days=optional_number("USAGE_RETENTION_DAYS", 1, 100_000),
        metrics_host=get("METRICS_HOST", "127.0.0.1"),
        metrics_port=optional_number("METRICS_PORT", 0, 65535),  # 0: any free port (the tests use it)
        message_content_intent=switch("MESSAGE_CONTENT_INTENT"),
        allow_dms=switch("ALLOW_DMS"),
    )


class _ReconnectWithoutTraceback(logging.Filter):
    """discord.py logs every gateway reconnect with the connection error's traceback; the line says enough,
    and a routine reconnect must not look like a crash in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Attempting a reconnect"):
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    logging.getLogger("discord.client").addFilter(_ReconnectWithoutTraceback())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))


def database_location(env: Mapping[str, str | None]) -> DatabaseLocation:
    """DATABASE_URL=postgresql://… selects PostgreSQL; without it, the SQLite file at DATABASE_PATH."""
    url = (env.get("DATABASE_URL") or "").strip()
    if url and not is_postgres_url(url):
        raise ConfigError("DATABASE_URL must start with postgresql:// (leave it empty to use DATABASE_PATH).")
    path = Path((env.get("DATABASE_PATH") or "").strip() or _DEFAULT_DATABASE)
    raw = (env.get("DATABASE_BUSY_TIMEOUT") or "").strip() or "5"
    try:
        busy_timeout = float(raw)
    except ValueError:
        raise ConfigError(f"DATABASE_BUSY_TIMEOUT must be a number, got {raw!r}.") from None
    if not 0.01 <= busy_timeout <= 60:
        raise ConfigError(f"DATABASE_BUSY_TIMEOUT must be between 0.01 and 60, got {raw!r}.")
    return DatabaseLocation(path=path, url=url or None, busy_timeout=busy_timeout)


def load_database_location(env_file: str | Path = ".env") -> DatabaseLocation:
    """For the maintenance commands, which need no Discord or model settings."""
    return database_location({**dotenv_values(env_file), **os.environ})


def load_prices(env_file: str | Path = ".env") -> PriceList:
    """For usage-export, which needs no Discord or model settings."""
    value = os.environ.get("PRICES_FILE") or dotenv_values(env_file).get("PRICES_FILE")
    try:
        return PriceList.load(Path(value) if value else DEFAULT_PRICES_FILE)
    except PriceError as exc:
        raise ConfigError(f"PRICES_FILE: {exc}") from None
