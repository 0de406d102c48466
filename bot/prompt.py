"""What one answer asks the model: the conversation fitted to the context budget, and the same request with
half its history for the one retry when the model's context is full anyway (pure)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from bot.attachments import Prepared, Skipped, file_block
from bot.conversation import Turn, render_turns, system_messages
from bot.llm import ChatRequest, Message
from bot.model_retry import FailureKind, classify
from bot.settings import ChannelSettings
from bot.tokens import CHARS_PER_TOKEN, estimate_tokens, message_tokens

MIN_FILE_TOKENS = 64  # less room than this for a file: leave it out rather than send a scrap
TOO_BIG = "too big for the context"


@dataclass(frozen=True)
class Fitted:
    request: ChatRequest
    left_out: int  # earlier turns the budget left out


def fit_request(
    settings: ChannelSettings, question: Turn, history: list[Turn], *, model: str | None = None
) -> Fitted:
    """The system prompt and the question always go; earlier turns are kept newest first while they fit
    `context_tokens`, so the oldest are the ones left out."""
    turns = history[-settings.history :] if settings.history else []
    *past, asked = render_turns([*turns, question])
    system = system_messages(settings)
    room = settings.context_tokens - sum(message_tokens(m) for m in [*system, asked])
    kept = 0
    for message in reversed(past):
        room -= message_tokens(message)
        if room < 0:
            break
        kept += 1
    request = ChatRequest(
        model=model or settings.model,
        messages=[*system, *past[len(past) - kept :], asked],
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        reasoning_effort=settings.reasoning_effort,
        fallback_model=settings.fallback_model,
    )
    return Fitted(request, len(past) - kept)


def fit_files(settings: ChannelSettings, prompt: str, prepared: Prepared) -> tuple[Prepared, list[str]]:
    """The question's text files inside `context_tokens`, after the system prompt and the prompt: in order,
    each kept while it fits, the first that does not cut short to the room left, and any with less than
    MIN_FILE_TOKENS of room left out. Returns them and the names of the files cut short."""
    question: Message = {"role": "user", "content": prompt}
    room = settings.context_tokens - sum(message_tokens(m) for m in [*system_messages(settings), question])
    texts: list[tuple[str, str]] = []
    skipped = list(prepared.skipped)
    cut: list[str] = []
    for name, body in prepared.texts:
        cost = estimate_tokens(file_block(name, body))
        if cost <= room:
            texts.append((name, body))
            room -= cost
            continue
        body_room = room - estimate_tokens(file_block(name, ""))
        if body_room < MIN_FILE_TOKENS:
            skipped.append(Skipped(name, TOO_BIG))
            continue
        texts.append((name, body[: body_room * CHARS_PER_TOKEN]))
        cut.append(name)
        room = 0
    return Prepared(texts, prepared.images, skipped), cut


def halved_history(chat: ChatRequest) -> tuple[ChatRequest, int] | None:
    """The request with the older half of its earlier turns left out, and how many it keeps; None when it
    has none to leave out."""
    system = 0
    while system < len(chat.messages) and chat.messages[system]["role"] == "system":
        system += 1
    history = chat.messages[system:-1]
    if not history:
        return None
    keep = len(history) // 2
    messages = [*chat.messages[:system], *history[len(history) - keep :], chat.messages[-1]]
    return dataclasses.replace(chat, messages=messages), keep


def context_full(exc: Exception) -> bool:
    """The model server refused the request as longer than the model's context."""
    return classify(exc, now=time.time()).kind is FailureKind.CONTEXT_LENGTH
