import asyncio
import dataclasses
from typing import Any

import pytest

from bot.db import Database, DatabaseLocation, open_database
from bot.settings import KEYS, ChannelSettings, SettingError, format_value, parse_value, resolve
from bot.store import settings as settings_store
from bot.store.settings import NOT_SET, SettingsStore
from bot.streaming.options import ReasoningMode
from tests.stores import ADMIN, CHANNEL, DEFAULTS, GUILD, OTHER_ADMIN, OTHER_CHANNEL, OTHER_GUILD


@pytest.fixture
def store(db: Database) -> SettingsStore:
    return SettingsStore(db)


def test_keys_match_channel_settings_fields() -> None:
    assert list(KEYS) == [f.name for f in dataclasses.fields(ChannelSettings)]


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("model", "  gpt-4o-mini ", "gpt-4o-mini"),
        ("system_prompt", "Be brief.", "Be brief."),
        ("system_prompt", "x" * 4000, "x" * 4000),
        ("temperature", "0", 0.0),
        ("temperature", "1.25", 1.25),
        ("temperature", "2", 2.0),
        ("max_tokens", "1", 1),
        ("max_tokens", "32768", 32768),
        ("max_tokens", "none", None),
        ("max_tokens", "", None),
        ("enabled", "ON", True),
        ("enabled", "yes", True),
        ("enabled", "true", True),
        ("enabled", "off", False),
        ("enabled", "No", False),
        ("enabled", "false", False),
        ("history", "0", 0),
        ("history", "50", 50),
        ("cooldown_seconds", "3600", 3600),
        ("daily_token_quota", "1", 1),
        ("daily_token_quota", "unlimited", None),
        ("fallback_model", " fake-model-mini ", "fake-model-mini"),
        ("fallback_model", "none", None),
        ("TEMPERATURE", "1", 1.0),  # keys are case-insensitive
        ("context_tokens", "256", 256),
        ("context_tokens", "2000000", 2_000_000),
        ("reply_in_thread", "on", True),
        (
            "user_models",
            "<@123456789012345678>, 223456789012345678 <@!123456789012345678>",
            [
                123456789012345678,
                223456789012345678,
            ],
        ),
        ("user_models", "none", []),
        ("reasoning", " File", ReasoningMode.FILE),
        ("reasoning_effort", "HIGH", "high"),
        ("reasoning_effort", "none", None),
        ("vision", "off", False),
    ],
)
def test_parse_value_accepts(key: str, raw: str, expected: object) -> None:
    value = parse_value(key, raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("temperature", "2.5", "temperature must be between 0 and 2"),
        ("temperature", "-0.1", "temperature must be between 0 and 2"),
        ("temperature", "nan", "temperature must be between 0 and 2"),
        ("temperature", "hot", "temperature must be a number between 0 and 2"),
        ("max_tokens", "0", "max_tokens must be a whole number from 1 to 32768, or none"),
        ("max_tokens", "32769", "max_tokens must be a whole number from 1 to 32768, or none"),
        ("max_tokens", "1.5", "max_tokens must be a whole number from 1 to 32768, or none"),
        ("history", "51", "history must be a whole number from 0 to 50"),
        ("history", "none", "history must be a whole number from 0 to 50"),
        ("cooldown_seconds", "-1", "cooldown_seconds must be a whole number from 0 to 3600"),
        ("daily_token_quota", "0", "daily_token_quota must be a whole number of at least 1, or none"),
        ("enabled", "maybe", "enabled must be on or off (true/false, yes/no also work)"),
        ("vision", "maybe", "vision must be on or off (true/false, yes/no also work)"),
        ("reasoning", "none", "reasoning must be one of hidden, summary, file"),
        ("reasoning_effort", "max", "reasoning_effort must be one of low, medium, high, or none"),
        ("model", "  ", "model must be a model name like gpt-4o-mini"),
        ("fallback_model", "two words", "fallback_model must be a model name like gpt-4o-mini, or none"),
        ("system_prompt", "x" * 4001, "system_prompt must be at most 4000 characters (got 4001)"),
        ("context_tokens", "255", "context_tokens must be a whole number from 256 to 2000000"),
        ("reply_in_thread", "maybe", "reply_in_thread must be on or off (true/false, yes/no also work)"),
        ("user_models", "@alice", "`@alice` is not a user (mention it or give its id)"),
    ],
)
def test_parse_value_rejects_with_user_message(key: str, raw: str, message: str) -> None:
    with pytest.raises(SettingError) as info:
        parse_value(key, raw)
    assert str(info.value) == message


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(
        SettingError, match=r"Unknown setting `colour`\. Valid settings: model, system_prompt"
    ):
        parse_value("colour", "blue")


def test_format_value() -> None:
    assert format_value("enabled", False) == "off"
    assert format_value("user_models", [1, 2]) == "<@1>, <@2>"
    assert format_value("user_models", []) == "none"
    assert format_value("max_tokens", None) == "none"
    assert format_value("temperature", 0.5) == "0.5"
    assert format_value("system_prompt", "") == "(empty)"


def test_resolve_channel_beats_guild_beats_defaults() -> None:
    resolved = resolve(
        DEFAULTS,
        {"temperature": 1.5, "history": 3, "retired_key": 1},
        {"temperature": 0.2, "max_tokens": None},
    )
    assert resolved == dataclasses.replace(DEFAULTS, temperature=0.2, history=3, max_tokens=None)


async def test_get_resolves_channel_then_server_then_defaults(store: SettingsStore) -> None:
    assert await store.get(GUILD, CHANNEL, DEFAULTS) == DEFAULTS
    await store.set(GUILD, "guild", GUILD, "temperature", "1.5", ADMIN)
    await store.set(GUILD, "guild", GUILD, "history", "4", ADMIN)
    await store.set(GUILD, "channel", CHANNEL, "temperature", "0.1", ADMIN)
    await store.set(GUILD, "guild", GUILD, "daily_token_quota", "5000", ADMIN)
    await store.set(GUILD, "channel", CHANNEL, "daily_token_quota", "none", ADMIN)  # explicit unlimited

    here = await store.get(GUILD, CHANNEL, DEFAULTS)
    assert (here.temperature, here.history, here.daily_token_quota) == (0.1, 4, None)
    elsewhere = await store.get(GUILD, OTHER_CHANNEL, DEFAULTS)
    assert (elsewhere.temperature, elsewhere.history, elsewhere.daily_token_quota) == (1.5, 4, 5000)
    assert await store.get(OTHER_GUILD, 2001, DEFAULTS) == DEFAULTS
    assert await store.get(None, 3001, DEFAULTS) == DEFAULTS  # direct messages
    assert await store.overrides(GUILD, CHANNEL) == (
        {"temperature": 1.5, "history": 4, "daily_token_quota": 5000},
        {"temperature": 0.1, "daily_token_quota": None},
    )


async def test_set_returns_old_value_and_cached_reads_see_writes(store: SettingsStore) -> None:
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).enabled is True  # fills the cache
    assert await store.set(GUILD, "channel", CHANNEL, "enabled", "off", ADMIN) is NOT_SET
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).enabled is False
    assert await store.set(GUILD, "channel", CHANNEL, "enabled", "on", ADMIN) is False
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).enabled is True


class CountingReads:
    """The test's database, counting the reads that reach it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    async def fetchall(self, sql: str, params: Any = ()) -> Any:
        self.reads += 1
        return await self.db.fetchall(sql, params)


async def test_a_burst_in_new_channels_reads_the_overrides_once(db: Database) -> None:
    """Admission of many answers at once must not queue a database read per channel."""
    counting = CountingReads(db)
    store = SettingsStore(counting)  # type: ignore[arg-type]
    await store.set(GUILD, "channel", CHANNEL, "enabled", "off", ADMIN)
    channels = [CHANNEL, *range(5000, 5200)]
    resolved = await asyncio.gather(*(store.get(GUILD, c, DEFAULTS) for c in channels))
    assert [s.enabled for s in resolved] == [False] + [True] * 200
    assert counting.reads == 1
    await store.set(GUILD, "channel", OTHER_CHANNEL, "enabled", "off", ADMIN)  # a write: read them again
    assert (await store.get(GUILD, OTHER_CHANNEL, DEFAULTS)).enabled is False
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).enabled is False
    assert counting.reads == 2


async def test_another_process_s_write_shows_after_the_refresh_interval(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_store, "REFRESH_AFTER", 0.0)
    here, there = SettingsStore(db), SettingsStore(db)  # two processes sharing one database

    async def refreshed() -> list[asyncio.Task[Any]]:
        refresh = [t for t in asyncio.all_tasks() if t.get_name() == "settings-refresh"]
        await asyncio.wait_for(asyncio.gather(*refresh), 5)
        return refresh

    assert (await here.get(GUILD, CHANNEL, DEFAULTS)).enabled is True
    await refreshed()  # a refresh started by that read may not see the write below
    await there.set(GUILD, "channel", CHANNEL, "enabled", "off", ADMIN)

    assert (await here.get(GUILD, CHANNEL, DEFAULTS)).enabled is True  # the copy answers, is read again
    assert await refreshed()
    assert (await here.get(GUILD, CHANNEL, DEFAULTS)).enabled is False


async def test_invalid_value_writes_nothing(store: SettingsStore) -> None:
    with pytest.raises(SettingError, match="temperature must be between 0 and 2"):
        await store.set(GUILD, "guild", GUILD, "temperature", "9", ADMIN)
    with pytest.raises(ValueError, match="guild id"):
        await store.set(GUILD, "guild", OTHER_GUILD, "temperature", "1", ADMIN)
    assert await store.overrides(GUILD, CHANNEL) == ({}, {})
    assert await store.history(GUILD) == []


async def test_audit_history_newest_first(store: SettingsStore) -> None:
    await store.set(GUILD, "guild", GUILD, "model", "a-model", ADMIN)
    await store.set(GUILD, "guild", GUILD, "model", "b-model", OTHER_ADMIN)
    await store.set(GUILD, "channel", CHANNEL, "max_tokens", "100", ADMIN)
    await store.set(OTHER_GUILD, "guild", OTHER_GUILD, "history", "1", ADMIN)
    await store.reset(GUILD, "guild", GUILD, "model", OTHER_ADMIN)

    await store.set(GUILD, "channel", CHANNEL, "max_tokens", "none", ADMIN)

    entries = await store.history(GUILD)
    assert [(e.scope, e.scope_id, e.key, e.old_value, e.new_value, e.user_id) for e in entries] == [
        ("channel", CHANNEL, "max_tokens", 100, None, ADMIN),
        ("guild", GUILD, "model", "b-model", None, OTHER_ADMIN),
        ("channel", CHANNEL, "max_tokens", None, 100, ADMIN),
        ("guild", GUILD, "model", "a-model", "b-model", OTHER_ADMIN),
        ("guild", GUILD, "model", None, "a-model", ADMIN),
    ]
    # An explicit "none" is a value; a reset is not: the flags tell them apart.
    assert [(e.old_set, e.new_set) for e in entries] == [
        (True, True),
        (True, False),
        (False, True),
        (True, True),
        (False, True),
    ]
    assert all(e.guild_id == GUILD and e.at.tzinfo is not None for e in entries)
    assert len(await store.history(GUILD, limit=2)) == 2


async def test_reset_one_key_or_all_at_a_scope(store: SettingsStore) -> None:
    await store.set(GUILD, "guild", GUILD, "history", "2", ADMIN)
    for key, raw in [("history", "5"), ("temperature", "1"), ("system_prompt", "Hi")]:
        await store.set(GUILD, "channel", CHANNEL, key, raw, ADMIN)

    assert await store.reset(GUILD, "channel", CHANNEL, "history", ADMIN) == {"history": 5}
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).history == 2  # falls back to the server value
    assert await store.reset(GUILD, "channel", CHANNEL, "history", ADMIN) == {}  # nothing left to reset

    assert await store.reset(GUILD, "channel", CHANNEL, None, OTHER_ADMIN) == {
        "temperature": 1.0,
        "system_prompt": "Hi",
    }
    assert await store.overrides(GUILD, CHANNEL) == ({"history": 2}, {})
    latest = await store.history(GUILD, limit=2)
    assert {(e.key, e.new_value, e.user_id) for e in latest} == {
        ("temperature", None, OTHER_ADMIN),
        ("system_prompt", None, OTHER_ADMIN),
    }


async def test_settings_survive_reopen(db_location: DatabaseLocation) -> None:
    db = await open_database(db_location)
    await SettingsStore(db).set(GUILD, "channel", CHANNEL, "model", "kept-model", ADMIN)
    await db.close()

    db = await open_database(db_location)
    try:
        store = SettingsStore(db)
        assert (await store.get(GUILD, CHANNEL, DEFAULTS)).model == "kept-model"
        assert [e.new_value for e in await store.history(GUILD)] == ["kept-model"]
    finally:
        await db.close()


def test_each_keys_metadata_agrees_with_its_parser() -> None:
    """What /config offers (on/off, choices, none) comes from KEYS and is accepted as offered."""
    for key, info in KEYS.items():
        for word in info.suggestions:
            parse_value(key, word)  # raises if the metadata offers what the parser refuses
        if not (info.accepts_none or info.choices or info.model) and key != "system_prompt":
            with pytest.raises(SettingError):
                parse_value(key, "none")
    assert [k for k, i in KEYS.items() if i.model] == ["model", "fallback_model"]
    assert KEYS["enabled"].suggestions == ["on", "off"]
    assert KEYS["reasoning_effort"].suggestions == ["low", "medium", "high", "none"]
    assert [k for k, i in KEYS.items() if i.channel] == ["alert_channel"]
