"""/config export and import at the service level: round trip, validation, all or nothing, audited."""

import json

import pytest

from bot.db import Database
from bot.settings_transfer import ImportRefused, export, parse
from bot.store.settings import SettingsStore
from tests.stores import ADMIN, CHANNEL, DEFAULTS, GUILD, OTHER_ADMIN, OTHER_CHANNEL, OTHER_GUILD

HERE = {CHANNEL, OTHER_CHANNEL}.__contains__


async def configure(store: SettingsStore) -> None:
    for scope, scope_id, key, value in [
        ("guild", GUILD, "system_prompt", ""),
        ("guild", GUILD, "monthly_budget", "25"),
        ("guild", GUILD, "prices", "gpt-4o=2.5/10"),
        ("guild", GUILD, "role_quotas", "<@&5>=100, <@&6>=none"),
        ("channel", CHANNEL, "temperature", "0.3"),
        ("channel", CHANNEL, "blocked_users", "<@9>"),
        ("channel", OTHER_CHANNEL, "enabled", "off"),
    ]:
        await store.set(GUILD, scope, scope_id, key, value, ADMIN)
    await store.set(OTHER_GUILD, "guild", OTHER_GUILD, "history", "3", ADMIN)


async def test_export_then_import_round_trips(db: Database) -> None:
    store = SettingsStore(db)
    await configure(store)
    before = await store.guild_overrides(GUILD)
    exported = await export(store, GUILD)
    document = json.loads(exported)
    assert document["server"]["prices"] == "gpt-4o=2.5/10"
    assert document["channels"][str(CHANNEL)] == {"blocked_users": "<@9>", "temperature": "0.3"}

    # Change things, then restore the export: exactly the exported overrides again.
    await store.set(GUILD, "channel", CHANNEL, "temperature", "1.9", ADMIN)
    await store.set(GUILD, "channel", CHANNEL, "history", "2", ADMIN)
    await store.reset(GUILD, "guild", GUILD, "monthly_budget", ADMIN)
    audit_before = len(await store.history(GUILD, limit=1000))
    result = await store.replace_all(GUILD, parse(exported, HERE), OTHER_ADMIN)
    assert (result.written, result.removed) == (2, 1)
    assert await store.guild_overrides(GUILD) == before
    assert (await store.get(GUILD, CHANNEL, DEFAULTS)).temperature == 0.3  # the cache saw it
    entries = (await store.history(GUILD, limit=1000))[:3]
    assert len(await store.history(GUILD, limit=1000)) == audit_before + 3
    assert {(e.key, e.user_id) for e in entries} == {
        ("temperature", OTHER_ADMIN),
        ("history", OTHER_ADMIN),
        ("monthly_budget", OTHER_ADMIN),
    }
    assert (await store.guild_overrides(OTHER_GUILD)).server == {"history": 3}  # other servers untouched


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"format": "something else"}', "not a Streamcord settings export"),
        (b'{"format": "streamcord-settings", "version": 9}', "version 9"),
    ],
)
def test_files_that_are_not_exports(document: bytes, problem: str) -> None:
    with pytest.raises(ImportRefused, match=problem):
        parse(document, HERE)


def test_every_problem_is_listed() -> None:
    document = {
        "format": "streamcord-settings",
        "version": 1,
        "server": {"temperature": "7", "colour": "blue", "history": 4},
        "channels": {str(CHANNEL): {"monthly_budget": "5"}, "12345": {"history": "2"}},
    }
    with pytest.raises(ImportRefused) as refused:
        parse(json.dumps(document).encode(), HERE)
    problems = refused.value.problems
    assert len(problems) == 5
    assert problems[0] == "server: temperature must be between 0 and 2"
    assert problems[1].startswith("server: Unknown setting `colour`")
    assert problems[2] == "server: `history` must be given as text, like /config set takes it"
    assert problems[3].startswith(f"channel {CHANNEL}: `monthly_budget` applies to the whole server")
    assert problems[4] == "channel 12345 is not a channel of this server"
