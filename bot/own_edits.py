"""The gateway's echo of the bot's own edits, read without building a discord.py Message.

Every edit of a streaming reply comes back as a MESSAGE_UPDATE, and discord.py builds a whole Message from
each one (author, reactions, flags: objects referring to one another, so only the garbage collector frees
them). At 1,000 answers that was hundreds of Messages a second that nothing read: all the bot needs is which
message changed. Updates of other authors' messages, and of messages with components (a view may track
them), still go through discord.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from discord.state import ConnectionState

EditSeen = Callable[[int], None]  # called with the id of a message the bot itself edited


def read_own_edits_lightly(state: ConnectionState[Any], on_own_edit: EditSeen) -> None:
    parse = state.parsers["MESSAGE_UPDATE"]

    def parse_message_update(data: dict[str, Any]) -> None:
        author = data.get("author")
        if author is not None and state.self_id == int(author["id"]) and not data.get("components"):
            on_own_edit(int(data["id"]))
        else:
            parse(data)

    state.parsers["MESSAGE_UPDATE"] = parse_message_update
