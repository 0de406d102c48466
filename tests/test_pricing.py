"""Prices: the shipped file, overrides, costs of a mix of models, and the setting values around them."""

from pathlib import Path

import pytest

from bot.pricing import DEFAULT_PRICES_FILE, Price, PriceError, PriceList, TokenCounts, parse_overrides
from bot.settings import ChannelSettings, SettingError, check_scope, format_value, parse_value, resolve


def test_shipped_price_file_loads_with_common_models() -> None:
    prices = PriceList.load(DEFAULT_PRICES_FILE)
    assert prices.currency == "USD"
    assert {"gpt-4o", "gpt-4o-mini", "o3"} <= prices.models.keys()
    assert all(p.input >= 0 and p.output >= 0 for p in prices.models.values())


def test_cost_of_a_mix_of_models_names_the_unpriced_ones() -> None:
    prices = PriceList("EUR", {"big": Price(2.0, 10.0), "thinker": Price(1.0, 4.0, reasoning=8.0)})
    cost = prices.cost(
        {
            "big": TokenCounts(requests=2, prompt=1_000_000, completion=500_000),
            # 300k of the 1M completion tokens were reasoning, billed at 8 instead of 4.
            "thinker": TokenCounts(requests=1, prompt=0, completion=1_000_000, reasoning=300_000),
            "homebrew": TokenCounts(requests=3, prompt=999, completion=999),
        }
    )
    assert cost.amount == pytest.approx(2.0 + 5.0 + 0.7 * 4.0 + 0.3 * 8.0)
    assert cost.unpriced_models == ("homebrew",)
    assert prices.money(cost.amount) == "12.20 EUR"
    assert prices.money(0.00123) == "0.0012 EUR"


def test_server_override_beats_the_file() -> None:
    prices = PriceList("USD", {"big": Price(2.0, 10.0)})
    overrides = parse_overrides("big=1/1, homebrew=0.5/0.5")
    tokens = {"big": TokenCounts(1, 1_000_000, 0), "homebrew": TokenCounts(1, 1_000_000, 0)}
    assert prices.cost(tokens, overrides).amount == pytest.approx(1.5)
    assert prices.cost(tokens).unpriced_models == ("homebrew",)


@pytest.mark.parametrize("raw", ["big", "big=1", "big=1/2/3/4", "big=a/b", "big=-1/2"])
def test_bad_override_is_refused(raw: str) -> None:
    with pytest.raises(PriceError):
        parse_overrides(raw)


def test_bad_price_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."x"]\ninput = 1\n')
    with pytest.raises(PriceError, match="needs input and output"):
        PriceList.load(path)
    path.write_text("not toml [")
    with pytest.raises(PriceError, match="not valid TOML"):
        PriceList.load(path)


def test_prices_setting_round_trips_and_is_server_only() -> None:
    stored = parse_value("prices", "gpt-4o=2.5/10; o3=2/8/8")
    assert stored == {"gpt-4o": [2.5, 10.0, None], "o3": [2.0, 8.0, 8.0]}
    assert format_value("prices", stored) == "gpt-4o=2.5/10, o3=2/8/8"
    with pytest.raises(SettingError, match="whole server"):
        check_scope("prices", "channel")
    check_scope("prices", "guild")
    # A channel value of a server-only key (from an older version, say) never applies.
    defaults = ChannelSettings(model="m")
    assert resolve(defaults, {"monthly_budget": 5.0}, {"monthly_budget": 1.0}).monthly_budget == 5.0


def test_id_lists_quotas_money_and_channels() -> None:
    assert parse_value("allowed_roles", "<@&11> <@&12>, 13") == [11, 12, 13]
    assert parse_value("blocked_users", "<@!5>, <@6>") == [5, 6]
    assert parse_value("allowed_roles", "none") == []
    assert format_value("allowed_roles", [11, 12]) == "<@&11>, <@&12>"
    assert format_value("blocked_users", []) == "none"
    assert parse_value("role_quotas", "<@&1>=50_000; 2=none") == [[1, 50000], [2, None]]
    assert format_value("role_quotas", [[1, 50000], [2, None]]) == "<@&1>=50000, <@&2>=none"
    assert parse_value("monthly_budget", "$12.5") == 12.5
    assert parse_value("alert_channel", "<#99>") == 99
    assert format_value("alert_channel", 99) == "<#99>"
    for key, raw in [
        ("allowed_roles", "<@5>"),  # a user where a role belongs
        ("role_quotas", "<@&1>"),
        ("role_quotas", "<@&1>=-5"),
        ("monthly_budget", "0"),
        ("alert_channel", "general"),
    ]:
        with pytest.raises(SettingError):
            parse_value(key, raw)
