"""Loopback fakes of Discord and of an OpenAI-compatible model server, shared by tests/ and bench/."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord
    from fakes.llm_server import FakeLLM


def bot_env(discord: FakeDiscord, llm: FakeLLM) -> dict[str, str]:
    """The variables that point the bot at both fakes (its token, servers and default model)."""
    return {
        "DISCORD_TOKEN": discord.token,
        "DEFAULT_MODEL": "fake-model",
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": llm.api_key,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
    }
