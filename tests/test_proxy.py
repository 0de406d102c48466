"""The REST proxy (proxy/launch.mjs) in front of the loopback Discord, driven by the real discord.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fakes.discord import FakeDiscord
from tests.proxy import rest_proxy


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as discord_fake:
        yield discord_fake


async def test_proxy_queues_an_upstream_429_and_resends_the_body(fake: FakeDiscord, tmp_path: Path) -> None:
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    fake.bucket_limits["message_create"] = (5, 1.0)  # a short window: the proxy's wait stays short
    auth = {"Authorization": f"Bot {fake.token}"}
    upstream = fake.api_base.removesuffix("/v10")
    async with (
        rest_proxy(upstream, tmp_path / "proxy.log") as proxy,
        aiohttp.ClientSession(headers=auth) as http,
    ):
        # Another client spends the channel's budget behind the proxy's back: the proxy meets a real 429.
        for i in range(5):
            async with http.post(f"{fake.api_base}/channels/{channel}/messages", json={"content": f"m{i}"}):
                pass
        async with http.post(f"{proxy}/channels/{channel}/messages", json={"content": "through"}) as resp:
            assert resp.status == 200
            assert not [h for h in resp.headers if h.lower().startswith("x-ratelimit")]  # stripped
            sent = await resp.json()
    assert fake.count_429() == 1  # the proxy met it, waited and sent the request again
    retried = [r for r in fake.requests if r.path == f"/channels/{channel}/messages"][-2:]
    assert [r.status for r in retried] == [429, 200]
    assert [r.json for r in retried] == [{"content": "through"}] * 2  # the body went out both times
    assert fake.messages[int(sent["id"])].content == "through"


async def test_proxy_passes_errors_and_their_bodies_through(fake: FakeDiscord, tmp_path: Path) -> None:
    guild = fake.add_guild()
    channel = fake.add_channel(guild)
    auth = {"Authorization": f"Bot {fake.token}"}
    upstream = fake.api_base.removesuffix("/v10")
    async with (
        rest_proxy(upstream, tmp_path / "proxy.log") as proxy,
        aiohttp.ClientSession(headers=auth) as http,
    ):
        async with http.post(f"{proxy}/channels/{channel}/messages", json={"content": "x" * 2001}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50035
        async with http.get(f"{proxy}/users/@me", headers={"Authorization": "Bot wrong"}) as resp:
            assert resp.status == 401
