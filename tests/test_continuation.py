"""Cut-off answers and their continuation (pure)."""

from __future__ import annotations

from bot.llm import ChatRequest
from bot.streaming.continuation import CutOff, CutOffAnswers, continue_request, is_continue

CHAT = ChatRequest("m", [{"role": "user", "content": "Tell a story"}], 0.7, 20)
CUT = CutOff(CHAT, "Once upon a", user_id=1, guild_id=2, channel_id=3, message_ids=(10, 11))


def test_continue_words() -> None:
    assert all(is_continue(w) for w in ("continue", " Continue. ", "CONTINUE!"))
    assert not any(is_continue(w) for w in ("continue please", "go on", ""))


def test_the_model_gets_the_cut_off_text_then_continue() -> None:
    request = continue_request(CUT)
    assert request.messages == [
        {"role": "user", "content": "Tell a story"},
        {"role": "assistant", "content": "Once upon a"},
        {"role": "user", "content": "continue"},
    ]
    assert (request.model, request.max_tokens) == ("m", 20)


def test_found_by_any_message_for_the_requester_only_until_continued() -> None:
    answers = CutOffAnswers(keep=3)
    answers.remember(CUT)
    assert answers.find(11, user_id=99) is None
    assert answers.find(11, user_id=1) == CUT
    answers.forget(CUT)
    assert answers.find(10, user_id=1) is None
    for n in range(4):
        answers.remember(CutOff(CHAT, "x", 1, 2, 3, (100 + n,)))
    assert answers.find(100, 1) is None and answers.find(103, 1) is not None  # the oldest went first


def test_remembered_without_the_images_it_was_asked_with() -> None:
    url = "data:image/png;base64," + "A" * 100_000
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    chat = ChatRequest("m", [{"role": "user", "content": parts}], 0.7, 20)
    answers = CutOffAnswers()
    answers.remember(CutOff(chat, "It is", user_id=1, guild_id=2, channel_id=3, message_ids=(10,)))
    found = answers.find(10, user_id=1)
    assert found is not None
    assert found.chat.messages == [{"role": "user", "content": "What is this?"}]
