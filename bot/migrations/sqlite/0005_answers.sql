-- Which Discord messages make up each answer and what started it, so a reply to any page of an answer
-- continues the conversation with the whole answer and its question (a /chat prompt is no message).
-- prompt_text holds the /chat prompt only (the user's own text, already visible in Discord); for a mention
-- or reply the prompt is a message, referenced by prompt_message_id and read from Discord when needed.
CREATE TABLE answers (
    request_id        TEXT    PRIMARY KEY,
    guild_id          INTEGER,
    channel_id        INTEGER NOT NULL,
    prompt_message_id INTEGER,
    prompt_text       TEXT,
    prompt_author_id  INTEGER NOT NULL,
    prompt_author     TEXT    NOT NULL,
    created_at        TEXT    NOT NULL
);
CREATE INDEX answers_created ON answers (created_at);

-- Every page of an answer: a reply to page 2 finds page 1 and the prompt through here.
CREATE TABLE answer_pages (
    message_id INTEGER PRIMARY KEY,
    request_id TEXT    NOT NULL REFERENCES answers (request_id) ON DELETE CASCADE,
    page       INTEGER NOT NULL
);
CREATE INDEX answer_pages_request ON answer_pages (request_id, page);
