"""The container files agree with the README (no Docker engine here: nothing is built)."""

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE = (ROOT / "compose.yaml").read_text(encoding="utf-8")


def instructions(name: str) -> list[str]:
    """The arguments of every Dockerfile instruction called ``name`` (continuation lines joined)."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, re.MULTILINE)]


def test_install_command_and_entrypoint_match_the_readme() -> None:
    installs = [run for run in instructions("RUN") if run.startswith("pip install")]
    assert installs == ["pip install ."]
    assert f"`{installs[0]}`" in README
    [entrypoint] = instructions("ENTRYPOINT")
    command = " ".join(json.loads(entrypoint))
    assert command == "python -m bot"
    assert f"starts it with `{command}`" in README


def test_readme_says_how_to_run_it() -> None:
    assert "docker compose up -d --build" in README
    assert "cp .env.example .env" in README


def test_slim_base_non_root_volume_and_healthcheck() -> None:
    [base] = instructions("FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base)
    [user] = instructions("USER")
    assert user != "root"
    assert instructions("VOLUME") == ["/app/data"]
    assert "DATABASE_PATH=/app/data/" in DOCKERFILE
    [check] = instructions("HEALTHCHECK")
    assert "/healthz" in check and "urllib.request" in check and "curl" not in check
    port = re.search(r"METRICS_PORT=(\d+)", DOCKERFILE)
    assert port and instructions("EXPOSE") == [port.group(1)]


def test_compose_runs_the_image_with_the_data_volume() -> None:
    assert "build: ." in COMPOSE
    assert re.search(r"^\s+- streamcord-data:/app/data$", COMPOSE, re.MULTILINE)
    assert "env_file: .env" in COMPOSE
    # The healthcheck's port is published on loopback only.
    assert '"127.0.0.1:9108:9108"' in COMPOSE and "METRICS_PORT=9108" in DOCKERFILE
    # Every file the image copies exists.
    for copy in instructions("COPY"):
        *sources, _ = shlex.split(copy)
        assert all((ROOT / source).exists() for source in sources), copy
