"""Configuration, logging and start-up failures an operator meets first."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, configure_logging, load_config
from bot.db import DatabaseLocation
from bot.db.sqlite import SqliteDatabase
from bot.settings import ChannelSettings
from tests.e2e import World

BASE = {"DISCORD_TOKEN": "discord-secret", "DEFAULT_MODEL": "gpt-4o-mini"}


def test_defaults_and_secrets_stay_out_of_repr() -> None:
    config = load_config({**BASE, "OPENAI_API_KEY": "sk-secret"})
    assert config.openai_base_url == "https://api.openai.com/v1"
    assert config.database == DatabaseLocation(path=Path("data/streamcord.sqlite3"))
    assert config.defaults.model == "gpt-4o-mini"
    assert config.llm_timeout == 60 and config.llm_max_retries == 2
    assert config.defaults.context_tokens == 8000
    assert not config.message_content_intent and not config.allow_dms
    assert config.llm_retry_budget == 20
    assert config.circuit_failures == 5 and config.circuit_cool_down == 30
    assert "sk-secret" not in repr(config) and "discord-secret" not in repr(config)


def test_one_default_system_prompt() -> None:
    """The built-in default, the settings' default and .env.example's example are one text (issue 18)."""
    built_in = load_config(BASE).defaults.system_prompt
    assert built_in == ChannelSettings(model="m").system_prompt
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text(encoding="utf-8")
    assert f"SYSTEM_PROMPT={built_in}\n" in example


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEFAULT_MODEL": "m"}, "DISCORD_TOKEN"),
        ({"DISCORD_TOKEN": "t"}, "DEFAULT_MODEL"),
        ({**BASE, "OPENAI_BASE_URL": "localhost:11434"}, "OPENAI_BASE_URL"),
        ({**BASE, "TEMPERATURE": "3"}, "TEMPERATURE"),
        ({**BASE, "LLM_TIMEOUT": "soon"}, "LLM_TIMEOUT"),
        ({**BASE, "LLM_RETRY_BUDGET": "-1"}, "LLM_RETRY_BUDGET"),
        ({**BASE, "LLM_CIRCUIT_FAILURES": "0"}, "LLM_CIRCUIT_FAILURES"),
        ({**BASE, "LLM_CIRCUIT_COOLDOWN": "never"}, "LLM_CIRCUIT_COOLDOWN"),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**BASE, "DISCORD_GATEWAY_URL": "http://x"}, "DISCORD_GATEWAY_URL"),
        ({**BASE, "CONTEXT_TOKENS": "10"}, "CONTEXT_TOKENS"),
        ({**BASE, "ALLOW_DMS": "maybe"}, "ALLOW_DMS"),
        ({**BASE, "MESSAGE_CONTENT_INTENT": "1"}, "MESSAGE_CONTENT_INTENT"),
    ],
)
def test_a_bad_variable_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


def test_library_loggers_that_print_tokens_stay_quiet_at_debug() -> None:
    root = logging.getLogger()
    saved = root.level
    configure_logging("DEBUG")
    root_level, root.level = root.level, saved
    for name in ("discord.http", "discord.webhook", "discord.gateway"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO
    assert root_level == logging.DEBUG


async def test_sql_parameters_stay_out_of_the_log_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = await SqliteDatabase.open(tmp_path / "s.db")
    caplog.set_level(logging.DEBUG, logger="aiosqlite")  # restored after the test
    await db.fetchone("SELECT ?", ("before-configure",))
    assert "before-configure" in caplog.text  # aiosqlite does print parameters at DEBUG

    root = logging.getLogger()
    saved = root.level
    configure_logging("DEBUG")
    root.level = saved
    await db.fetchone("SELECT ?", ("You are a secret system prompt",))
    assert "secret system prompt" not in caplog.text
    await db.close()


async def run_bot_cli(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env={"PATH": os.environ["PATH"], **env},
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def test_an_invalid_token_exits_2_without_a_traceback(world: World, tmp_path: Path) -> None:
    code, output = await run_bot_cli(world.env(DISCORD_TOKEN="not-the-token"), tmp_path)
    assert code == 2
    assert "Discord rejected DISCORD_TOKEN" in output
    assert "Traceback" not in output
    assert "not-the-token" not in output


async def test_a_corrupt_database_exits_2_with_one_line(world: World, tmp_path: Path) -> None:
    world.db_path.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    code, output = await run_bot_cli(world.env(), tmp_path)
    assert code == 2 and "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(f"Database error: cannot use the SQLite database {world.db_path}")
    )


async def test_an_unusable_database_path_exits_2_with_one_line(world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    code, output = await run_bot_cli(world.env(DATABASE_PATH=str(blocker / "s.db")), tmp_path)
    assert code == 2 and "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(f"Database error: cannot open the SQLite database {blocker / 's.db'}")
    )


async def test_a_failing_command_sync_exits_2_with_one_line(world: World, tmp_path: Path) -> None:
    world.discord.fail_requests("PUT", "/commands", 400, count=1, code=50035, message="Invalid Form Body")
    code, output = await run_bot_cli(world.env(), tmp_path)
    assert code == 2 and "Traceback" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("Start-up error: Discord refused the slash commands (400 50035)")
