"""The one translation of the stores' ``?`` placeholders into PostgreSQL's ``$1, $2, …``."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1024)
def to_numbered(sql: str) -> str:
    """Replace each ``?`` outside quotes and comments with ``$n``, numbered left to right."""
    out: list[str] = []
    number = 0
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"":  # a string or quoted identifier; a doubled quote inside is an escaped quote
            end = i + 1
            while end < len(sql):
                if sql[end] == char:
                    if end + 1 < len(sql) and sql[end + 1] == char:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = len(sql) if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif char == "?":
            number += 1
            out.append(f"${number}")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
