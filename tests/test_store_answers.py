from bot.db import Database
from bot.store.answers import AnswerOrigin, AnswersStore

CHAT = AnswerOrigin(guild_id=1, channel_id=2, author_id=3, author_name="Alice", prompt_text="Tell me")
MENTION = AnswerOrigin(guild_id=None, channel_id=5, author_id=3, author_name="Alice", prompt_message_id=77)


async def test_any_page_finds_the_whole_answer_and_its_prompt(db: Database) -> None:
    answers = AnswersStore(db)
    await answers.set_pages("r1", CHAT, [10])
    await answers.set_pages("r1", CHAT, [10, 11])
    await answers.set_pages("r1", CHAT, [10, 11, 12])
    for page in (10, 11, 12):
        answer = await answers.by_message(page)
        assert answer is not None
        assert (answer.request_id, answer.message_ids, answer.origin) == ("r1", [10, 11, 12], CHAT)


async def test_a_mention_answer_keeps_its_prompt_message_not_its_text(db: Database) -> None:
    answers = AnswersStore(db)
    await answers.set_pages("r2", MENTION, [20])
    answer = await answers.by_message(20)
    assert answer is not None and answer.origin == MENTION and answer.origin.prompt_text is None
    assert await answers.by_message(21) is None
