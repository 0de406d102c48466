-- Reasoning tokens a model reported (usage.completion_tokens_details.reasoning_tokens), part of
-- completion_tokens; NULL when the server did not say.
ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER CHECK (reasoning_tokens IS NULL OR reasoning_tokens >= 0);
