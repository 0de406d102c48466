"""The context budget and the request with half its history for the one retry (pure)."""

from __future__ import annotations

import httpx2
import openai

from bot.attachments import Prepared, Skipped
from bot.conversation import Turn
from bot.llm import message_text
from bot.prompt import MIN_FILE_TOKENS, TOO_BIG, context_full, fit_files, fit_request, halved_history
from bot.settings import ChannelSettings
from bot.tokens import message_tokens


def turns(n: int) -> list[Turn]:
    return [
        Turn("user", f"question {i} " + "x" * 36, "Alice") if i % 2 == 0 else Turn("assistant", f"a{i}")
        for i in range(n)
    ]


def test_without_a_tight_budget_every_allowed_turn_goes() -> None:
    settings = ChannelSettings(model="m", system_prompt="Be brief.", history=4, context_tokens=8000)
    fitted = fit_request(settings, Turn("user", "now?", "Alice"), turns(6))
    roles = [m["role"] for m in fitted.request.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert fitted.request.messages[-1] == {"role": "user", "content": "now?", "name": "Alice"}
    assert fitted.left_out == 0


def test_the_oldest_turns_are_left_out_first() -> None:
    question = Turn("user", "the new question", "Alice")
    settings = ChannelSettings(model="m", system_prompt="Be brief.", history=50, context_tokens=120)
    fitted = fit_request(settings, question, turns(30), model="picked")
    messages = fitted.request.messages
    assert messages[0]["role"] == "system" and messages[-1]["content"] == "the new question"
    assert sum(message_tokens(m) for m in messages) <= 120
    kept = messages[1:-1]
    assert 0 < len(kept) < 30 and fitted.left_out == 30 - len(kept)
    assert kept[-1]["content"] == "a29"  # the newest earlier turn is kept
    assert fitted.request.model == "picked"


def test_the_question_goes_even_when_it_alone_is_over_budget() -> None:
    settings = ChannelSettings(model="m", system_prompt="S", context_tokens=256)
    fitted = fit_request(settings, Turn("user", "y" * 4000, "Alice"), turns(4))
    assert [message_text(m) for m in fitted.request.messages] == ["S", "y" * 4000]
    assert fitted.left_out == 4


def test_a_question_with_an_image_keeps_it_and_says_who_asked_once_two_talk() -> None:
    settings = ChannelSettings(model="m", system_prompt="")
    image = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "u"}}]
    fitted = fit_request(settings, Turn("user", image, "Bob"), [Turn("user", "hi", "Alice")])
    assert fitted.request.messages[-1] == {
        "role": "user",
        "content": [{"type": "text", "text": "Bob:"}, *image],
        "name": "Bob",
    }


def test_half_the_history_goes_for_the_retry_and_the_rest_stays() -> None:
    settings = ChannelSettings(model="m", system_prompt="S", history=50)
    chat = fit_request(settings, Turn("user", "q", "Alice"), turns(20)).request
    shorter = halved_history(chat)
    assert shorter is not None
    retry, kept = shorter
    assert kept == 10 and retry.messages == [chat.messages[0], *chat.messages[11:]]
    assert halved_history(fit_request(settings, Turn("user", "q", "Alice"), []).request) is None


def test_only_a_context_length_refusal_is_a_full_context() -> None:
    response = httpx2.Response(400, request=httpx2.Request("POST", "http://x/v1/chat/completions"))
    full = openai.BadRequestError(
        "long", response=response, body={"error": {"code": "context_length_exceeded"}}
    )
    other = openai.BadRequestError("bad", response=response, body={"error": {"code": "invalid_value"}})
    assert context_full(full) and not context_full(other)


def test_text_files_fit_the_budget_in_order_cut_short_or_left_out() -> None:
    settings = ChannelSettings(model="m", system_prompt="", context_tokens=400)
    prepared = Prepared(
        texts=[("a.txt", "a" * 400), ("b.log", "b" * 4000), ("c.md", "c" * 40)],
        skipped=[Skipped("x.zip", "not a text file or an image")],
    )
    fitted, cut = fit_files(settings, "read these", prepared)
    [(a, a_body), (b, b_body)] = fitted.texts
    assert (a, a_body) == ("a.txt", "a" * 400)  # fits whole
    assert b == "b.log" and 0 < len(b_body) < 4000 and cut == ["b.log"]  # cut to what is left
    assert fitted.skipped == [Skipped("x.zip", "not a text file or an image"), Skipped("c.md", TOO_BIG)]
    question = fit_request(settings, Turn("user", "read these"), []).request.messages
    used = message_tokens(question[-1]) + sum(len(f"{name}{body}") for name, body in fitted.texts) // 4
    assert used <= settings.context_tokens


def test_a_file_with_hardly_any_room_left_is_left_out_not_sent_as_a_scrap() -> None:
    settings = ChannelSettings(model="m", system_prompt="", context_tokens=256)
    fitted, cut = fit_files(
        settings, "x" * 4 * (256 - MIN_FILE_TOKENS), Prepared(texts=[("a.txt", "a" * 9000)])
    )
    assert fitted.texts == [] and cut == [] and fitted.skipped == [Skipped("a.txt", TOO_BIG)]
