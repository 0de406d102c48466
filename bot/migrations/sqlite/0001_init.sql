-- Streamcord initial schema.
-- Times are ISO-8601 UTC text, fixed width ("2025-01-31T12:00:00.000000Z"), so text comparison = time order.
-- Discord ids are INTEGER (snowflakes fit in 63 bits). No tokens or API keys are ever stored.

-- Per-server and per-channel overrides of the bot's defaults; value is JSON.
CREATE TABLE settings (
    scope      TEXT    NOT NULL CHECK (scope IN ('guild', 'channel')),
    scope_id   INTEGER NOT NULL,
    guild_id   INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_by INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (scope, scope_id, key),
    CHECK (scope = 'channel' OR scope_id = guild_id)
);

-- Every change to settings; old_value/new_value are JSON, NULL meaning "not set".
CREATE TABLE config_audit (
    id        INTEGER PRIMARY KEY,
    guild_id  INTEGER NOT NULL,
    scope     TEXT    NOT NULL CHECK (scope IN ('guild', 'channel')),
    scope_id  INTEGER NOT NULL,
    key       TEXT    NOT NULL,
    old_value TEXT,
    new_value TEXT,
    user_id   INTEGER NOT NULL,
    at        TEXT    NOT NULL
);
CREATE INDEX config_audit_guild ON config_audit (guild_id, id);

-- One row per model request. guild_id is NULL for direct messages.
CREATE TABLE usage (
    id                INTEGER PRIMARY KEY,
    request_id        TEXT    NOT NULL UNIQUE,
    guild_id          INTEGER,
    channel_id        INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    estimated         INTEGER NOT NULL DEFAULT 0 CHECK (estimated IN (0, 1)),
    ttft_ms           INTEGER,
    duration_ms       INTEGER,
    status            TEXT    NOT NULL DEFAULT 'streaming'
                      CHECK (status IN ('streaming', 'completed', 'stopped', 'error', 'interrupted')),
    error             TEXT,
    started_at        TEXT    NOT NULL,
    finished_at       TEXT
);
-- Quota/cooldown lookups and per-user summaries.
CREATE INDEX usage_guild_user ON usage (guild_id, user_id, started_at);
-- Per-channel summaries.
CREATE INDEX usage_guild_channel ON usage (guild_id, channel_id, started_at);
-- Server summaries (also serves the top-users grouping) and CSV export by date.
CREATE INDEX usage_guild_started ON usage (guild_id, started_at);
CREATE INDEX usage_started ON usage (started_at);

-- Replies being streamed right now; rows left by a previous process are orphans to clean up at startup.
-- owner is the Database.instance_id of the process that started the reply.
CREATE TABLE inflight (
    request_id  TEXT    PRIMARY KEY REFERENCES usage (request_id),
    guild_id    INTEGER,
    channel_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    message_ids TEXT    NOT NULL DEFAULT '[]',
    started_at  TEXT    NOT NULL,
    owner       TEXT    NOT NULL
);
