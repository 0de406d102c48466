from __future__ import annotations

import pytest

from bot.streaming.routes import (
    ChannelBudget,
    MessageWrite,
    Route,
    api_path,
    known_bucket,
    major_parameters,
    redact,
    token_hash,
)

TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQ.very-secret_token"
BASE = "https://discord.com/api/v10"


def route_key(method: str, path: str) -> str:
    return Route.of(method, path).key


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("POST", "/channels/10/messages", "POST /channels/{channel_id}/messages:10"),
        ("PATCH", "/channels/10/messages/99", "PATCH /channels/{channel_id}/messages/{message_id}:10"),
        ("DELETE", "/channels/10/messages/99", "DELETE /channels/{channel_id}/messages/{message_id}:10"),
        ("GET", "/channels/10/messages/99", "GET /channels/{channel_id}/messages/{message_id}:10"),
        (
            "PUT",
            "/channels/10/messages/99/reactions/%F0%9F%9B%91/@me",
            "REACTION /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}:10",
        ),
        (
            "DELETE",
            "/channels/10/messages/99/reactions/🛑/42",
            "REACTION /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}:10",
        ),
        ("GET", "/guilds/7/members/42", "GET /guilds/{guild_id}/members/{user_id}:7"),
        ("GET", "/users/@me", "GET /users/@me"),
        ("GET", "/gateway/bot", "GET /gateway/bot"),
        ("get", "/channels/10/messages?limit=50", "GET /channels/{channel_id}/messages:10"),
    ],
)
def test_route_keys(method: str, path: str, key: str) -> None:
    assert route_key(method, path) == key


def test_adding_and_removing_reactions_share_one_known_bucket() -> None:
    add = Route.reaction_add(10, 99, "🛑")
    assert add.key == Route.reaction_remove(10, 99, "🛑").key == Route.reaction_remove(10, 99, "🛑", 42).key
    assert add.key == route_key("DELETE", "/channels/10/messages/99/reactions/%F0%9F%9B%91/@me")
    assert add.key != Route.reaction_add(11, 99, "🛑").key
    assert known_bucket(add.key) == (1, 0.25)
    assert known_bucket(route_key("GET", "/channels/10/messages/99/reactions/🛑")) is None
    assert known_bucket(route_key("PATCH", "/channels/10/messages/99")) is None


def test_minor_ids_share_a_key_and_major_ids_do_not() -> None:
    assert route_key("PATCH", "/channels/1/messages/2") == route_key("PATCH", "/channels/1/messages/3")
    assert route_key("PATCH", "/channels/1/messages/2") != route_key("PATCH", "/channels/4/messages/2")
    assert route_key("POST", "/channels/1/messages") != route_key("PATCH", "/channels/1/messages/2")


def test_full_urls_and_api_prefixes_give_the_same_key() -> None:
    key = route_key("PATCH", "/channels/1/messages/2")
    assert route_key("PATCH", "https://discord.com/api/v10/channels/1/messages/2") == key
    assert route_key("PATCH", "http://127.0.0.1:5000/api/v10/channels/1/messages/2") == key
    assert route_key("PATCH", "/api/v10/channels/1/messages/2") == key


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", f"/webhooks/55/{TOKEN}", "POST /webhooks/{webhook_id}/{webhook_token}"),
        (
            "PATCH",
            f"/webhooks/55/{TOKEN}/messages/@original",
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
        ),
        (
            "PATCH",
            f"/webhooks/55/{TOKEN}/messages/77",
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        ),
        (
            "POST",
            f"/interactions/66/{TOKEN}/callback",
            "POST /interactions/{webhook_id}/{webhook_token}/callback",
        ),
    ],
)
def test_token_routes_keep_a_hash_never_the_token(method: str, path: str, template: str) -> None:
    key = route_key(method, path)
    assert TOKEN not in key
    assert token_hash(TOKEN) in key
    assert len(token_hash(TOKEN)) == 12
    assert key.startswith(template + ":")
    assert major_parameters(key).endswith("+" + token_hash(TOKEN))


def test_different_tokens_are_different_buckets() -> None:
    assert route_key("POST", "/webhooks/1/aaa") != route_key("POST", "/webhooks/1/bbb")


def test_major_parameters() -> None:
    assert major_parameters(route_key("PATCH", "/channels/1/messages/2")) == "1"
    assert major_parameters(route_key("GET", "/gateway/bot")) == ""


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/channels/1/messages", True),
        ("PATCH", "/channels/1/messages/2", True),
        ("PUT", "/channels/1/messages/2/reactions/x/@me", True),
        ("GET", "/gateway/bot", True),
        ("GET", "/webhooks/5", True),  # bot-authenticated, no token
        ("POST", f"/interactions/6/{TOKEN}/callback", False),
        ("POST", f"/webhooks/5/{TOKEN}", False),
        ("PATCH", f"/webhooks/5/{TOKEN}/messages/@original", False),
        ("PATCH", f"http://127.0.0.1:1/api/v10/webhooks/5/{TOKEN}/messages/9", False),
    ],
)
def test_uses_global(method: str, path: str, expected: bool) -> None:
    assert Route.of(method, path).uses_global is expected


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/channels/1/messages", 1),
        ("PATCH", "/channels/1/messages/2", 1),
        ("DELETE", "/channels/1/messages/2", 1),
        ("GET", "/channels/1/messages/2", None),
        ("POST", "/channels/1/messages/bulk-delete", None),
        ("PUT", "/channels/1/messages/2/reactions/x/@me", None),
        ("PATCH", f"/webhooks/5/{TOKEN}/messages/9", None),
    ],
)
def test_message_budget_channel(method: str, path: str, expected: int | None) -> None:
    assert Route.of(method, path).channel_id == expected


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (Route.create_message(1), (1, MessageWrite.CREATE)),
        (Route.edit_message(1, 2), (1, MessageWrite.EDIT)),
        (Route.of("DELETE", "/channels/1/messages/2"), (1, MessageWrite.EDIT)),
        (Route.webhook_create(5, TOKEN, channel_id=1), (1, MessageWrite.CREATE)),
        (Route.webhook_edit(5, TOKEN, "@original", channel_id=1), (1, MessageWrite.EDIT)),
        (Route.fetch_message(1, 2), None),
    ],
)
def test_creates_and_edits_spend_different_channel_budgets(
    route: Route, expected: ChannelBudget | None
) -> None:
    assert route.channel_budget == expected


def test_api_path() -> None:
    assert api_path("https://discord.com/api/v10/channels/1?x=1") == "/channels/1"
    assert api_path("/api/v10/gateway/bot") == "/gateway/bot"
    assert api_path("https://cdn.discordapp.com/attachments/1/2/a.png") is None
    assert api_path("/gateway") is None


def test_redact() -> None:
    text = (
        f"PATCH https://discord.com/api/v10/webhooks/5/{TOKEN}/messages/@original failed; "
        f"/interactions/6/{TOKEN}/callback"
    )
    redacted = redact(text)
    assert TOKEN not in redacted
    assert redacted.count(token_hash(TOKEN)) == 2
    assert "/webhooks/5/" in redacted and "/messages/@original" in redacted
    assert redact("/channels/1/messages/2") == "/channels/1/messages/2"


@pytest.mark.parametrize(
    ("declared", "method", "url"),
    [
        (Route.create_message(10), "POST", f"{BASE}/channels/10/messages"),
        (Route.edit_message(10, 99), "PATCH", f"{BASE}/channels/10/messages/99"),
        (Route.fetch_message(10, 99), "GET", f"{BASE}/channels/10/messages/99"),
        (
            Route.reaction_add(10, 99, "🛑"),
            "PUT",
            f"{BASE}/channels/10/messages/99/reactions/%F0%9F%9B%91/@me",
        ),
        (
            Route.reaction_remove(10, 99, "🛑", 42),
            "DELETE",
            f"{BASE}/channels/10/messages/99/reactions/%F0%9F%9B%91/42",
        ),
        (
            Route.reaction_remove(10, 99, "🛑"),
            "DELETE",
            f"{BASE}/channels/10/messages/99/reactions/%F0%9F%9B%91/@me",
        ),
        (Route.interaction_callback(66, TOKEN), "POST", f"{BASE}/interactions/66/{TOKEN}/callback"),
    ],
)
def test_declared_routes_are_what_the_trace_derives(declared: Route, method: str, url: str) -> None:
    assert Route.of(method, url) == declared


@pytest.mark.parametrize(
    ("declared", "method", "url"),
    [
        (Route.webhook_create(55, TOKEN, channel_id=10), "POST", f"{BASE}/webhooks/55/{TOKEN}"),
        (
            Route.webhook_edit(55, TOKEN, "@original", channel_id=10),
            "PATCH",
            f"{BASE}/webhooks/55/{TOKEN}/messages/@original",
        ),
        (
            Route.webhook_edit(55, TOKEN, 77, channel_id=10),
            "PATCH",
            f"{BASE}/webhooks/55/{TOKEN}/messages/77",
        ),
    ],
)
def test_webhook_routes_carry_the_channel_their_path_does_not_name(
    declared: Route, method: str, url: str
) -> None:
    traced = Route.of(method, url)
    assert traced.channel_id is None
    assert declared == traced.spending(10)
    assert not declared.uses_global
