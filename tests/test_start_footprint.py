"""What a starting bot loads: the heavy optional libraries wait until they are used (issue 13's memory:
matplotlib and PIL about 50 MB, asyncpg and prometheus-client about 10 MB each)."""

import subprocess
import sys

# Everything `python -m bot` imports before it connects (the cogs are loaded by setup_hook).
START = "import bot.__main__, bot.client, cogs.chat, cogs.config, cogs.continuation, cogs.stop, cogs.usage"
LAZY = {
    "matplotlib": "/usage show chart:",
    "PIL": "/usage show chart:",
    "asyncpg": "DATABASE_URL",
    "prometheus_client": "METRICS_PORT",
}


def test_heavy_optional_libraries_are_not_loaded_at_start() -> None:
    script = f"{START}\nimport sys\nprint(' '.join(m for m in {sorted(LAZY)!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == [], {m: f"only needed with {LAZY[m]}" for m in loaded.stdout.split()}
