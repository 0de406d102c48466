"""`python -m bench.run_bot`: the bot exactly as `python -m bot` runs it, but paced by the naive FixedPacer.

The swap happens here, by replacing the Pacer that bot.client assembles, so the product has no bench knob.
"""

from __future__ import annotations

import contextlib
import sys

import bot.client
from bench.fixed_pacer import FixedPacer
from bot.__main__ import main

if __name__ == "__main__":
    bot.client.Pacer = FixedPacer  # type: ignore[misc,assignment]
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main([]))
