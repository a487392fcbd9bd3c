-- Model usage per day, user, API key and model: one row updated in place by every finished
-- generation (chat turns, completions, tool rounds). Read by the `usage` query, /api/stats
-- and the token quotas. `api_key_id` 0 means a session (a NULL could not be part of the key).
CREATE TABLE usage_daily (
    day DATE NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id BIGINT NOT NULL DEFAULT 0,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, api_key_id, model)
);
CREATE INDEX usage_daily_user ON usage_daily (user_id, day);
