-- Issue 15 (PostgreSQL twin of migrations/sqlite/0003_costs_retention.sql): reasoning tokens, per-day usage
-- aggregates kept when USAGE_RETENTION_DAYS prunes request rows, and the budget alerts already sent.

-- Part of completion_tokens, as in the OpenAI usage object.
ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;

-- What pruned (or forgotten) usage rows added up to, per UTC day. user_id is NULL once a user asked
-- /usage forget: the server's totals stay right without anything pointing at them.
CREATE TABLE usage_daily (
    day                TEXT    COLLATE "C" NOT NULL,  -- YYYY-MM-DD, UTC
    guild_id           BIGINT,
    channel_id         BIGINT  NOT NULL,
    user_id            BIGINT,
    model              TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    requests           INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    estimated_requests INTEGER NOT NULL
);
CREATE INDEX usage_daily_guild_day ON usage_daily (guild_id, day);
CREATE INDEX usage_daily_guild_user ON usage_daily (guild_id, user_id, day);

-- Budget warnings sent (threshold in percent, month as YYYY-MM): a restart never repeats one.
CREATE TABLE budget_alerts (
    guild_id  BIGINT  NOT NULL,
    month     TEXT    NOT NULL,
    threshold INTEGER NOT NULL,
    sent_at   TEXT    NOT NULL,
    PRIMARY KEY (guild_id, month, threshold)
);
