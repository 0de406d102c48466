"""A plain `pip install .` works from any working directory: migrations and the price list are package data
(issue 17: they were found only next to the source tree, so the bot needed CWD=/app)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_installed_bot_migrates_and_prices_from_another_directory(tmp_path: Path) -> None:
    # Build from a copy, so the install never sees the checkout (nor writes build files into it).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("bot", "cogs"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    installed = _run([*pip, "--target", str(site), str(source)], tmp_path, dict(os.environ))
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # nothing may be read from the source tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"),
        "DATABASE_URL": "",
        "PRICES_FILE": "",
    }
    env.pop("VIRTUAL_ENV", None)

    migrated = _run([sys.executable, "-m", "bot", "migrate"], elsewhere, env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "applied: 0001_init.sql" in migrated.stdout
    checked = _run([sys.executable, "-m", "bot", "migrate", "--check"], elsewhere, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "up to date" in checked.stdout
    exported = _run([sys.executable, "-m", "bot", "usage-export", "--since", "2026-01-01"], elsewhere, env)
    assert exported.returncode == 0, exported.stderr  # loads the default price list
    assert exported.stdout.startswith("request_id,")
