"""Who may ask (allowed/blocked roles and users) and the role quotas: pure rules."""

import dataclasses

from bot.access import daily_quota, may_ask
from bot.settings import ChannelSettings

BASE = ChannelSettings(model="m", daily_token_quota=1000)
ALICE, BOB = 1, 2
HELPERS, STAFF, MUTED = 10, 11, 12


def settings(**changes: object) -> ChannelSettings:
    return dataclasses.replace(BASE, **changes)


def test_everyone_may_ask_without_rules() -> None:
    assert may_ask(BASE, ALICE, [])


def test_allow_lists_let_in_only_who_they_name() -> None:
    rules = settings(allowed_roles=[HELPERS], allowed_users=[BOB])
    assert may_ask(rules, ALICE, [HELPERS])
    assert may_ask(rules, BOB, [])
    assert not may_ask(rules, ALICE, [STAFF])


def test_blocks_win_over_allows() -> None:
    rules = settings(allowed_roles=[HELPERS], blocked_roles=[MUTED], blocked_users=[BOB])
    assert not may_ask(rules, ALICE, [HELPERS, MUTED])
    assert not may_ask(rules, BOB, [HELPERS])
    assert not may_ask(settings(blocked_roles=[MUTED]), ALICE, [MUTED])


def test_the_most_generous_role_quota_applies() -> None:
    rules = settings(role_quotas=[[HELPERS, 5000], [STAFF, 20000], [MUTED, 10]])
    assert daily_quota(rules, [HELPERS, STAFF, MUTED]) == 20000
    assert daily_quota(rules, [MUTED]) == 10
    assert daily_quota(rules, []) == 1000  # no listed role: the channel's daily_token_quota
    assert daily_quota(settings(role_quotas=[[STAFF, None], [HELPERS, 5]]), [HELPERS, STAFF]) is None
