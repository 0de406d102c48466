"""SHARD_COUNT and SHARD_IDS: which shards a process runs, and what follows (pure)."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config
from bot.shard_plan import ShardPlan, parse_shard_plan

BASE = {"DISCORD_TOKEN": "t", "DEFAULT_MODEL": "m"}


def test_unset_is_one_connection_that_syncs_and_recovers_everything() -> None:
    plan = load_config(BASE).shards
    assert plan == ShardPlan() and not plan.sharded and plan.syncs_commands
    assert plan.client_options() == {} and plan.guilds()(123 << 22)


def test_a_subset_of_shards() -> None:
    plan = load_config(BASE | {"SHARD_COUNT": "4", "SHARD_IDS": "3, 2"}).shards
    assert plan == ShardPlan(4, (2, 3)) and not plan.syncs_commands
    assert plan.client_options() == {"shard_count": 4, "shard_ids": [2, 3]}
    belongs = plan.guilds()
    assert [belongs(shard << 22) for shard in range(4)] == [False, False, True, True]
    assert not belongs(None)  # direct messages reach shard 0
    assert ShardPlan(4, (0, 1)).syncs_commands and ShardPlan(4, (0, 1)).guilds()(None)
    assert ShardPlan(2).client_options() == {"shard_count": 2, "shard_ids": None}


@pytest.mark.parametrize(
    ("count", "ids", "message"),
    [
        ("", "1", "SHARD_IDS needs SHARD_COUNT"),
        ("two", "", "SHARD_COUNT must be a whole number"),
        ("0", "", "SHARD_COUNT must be at least 1"),
        ("2", "0,2", "SHARD_IDS must be shard numbers from 0 to 1"),
        ("2", "a", "SHARD_IDS must be comma-separated"),
    ],
)
def test_bad_values_name_the_variable(count: str, ids: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard_plan(count, ids)
    with pytest.raises(ConfigError, match=message):
        load_config(BASE | {"SHARD_COUNT": count, "SHARD_IDS": ids})


def test_behind_a_rest_proxy_the_global_budget_is_the_proxys() -> None:
    proxied = load_config(BASE | {"DISCORD_API_BASE": "http://proxy:8080/api/v10", "DISCORD_REST_PROXY": "1"})
    assert proxied.global_rate_limit == 10_000
    assert load_config(BASE).global_rate_limit == 50
    with pytest.raises(ConfigError, match="DISCORD_API_BASE"):
        load_config(BASE | {"DISCORD_REST_PROXY": "true"})
