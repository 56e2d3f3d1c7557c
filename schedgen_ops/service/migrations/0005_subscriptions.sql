-- Calendar subscriptions made by the web page (/): a capability URL /cal/{token}.ics that calendar apps
-- poll. Only the sha256 of the token is stored (like api_keys): a copy of the database cannot be turned
-- into working URLs, and nothing lists them. The row names the jobs whose results it merges and the
-- student's choices (semester or dates, groups, exam duration); it answers while those results are kept.
CREATE TABLE subscriptions (
    token_hash  text PRIMARY KEY,                    -- sha256 hex of the token in the URL
    job_ids     text[] NOT NULL CHECK (cardinality(job_ids) BETWEEN 1 AND 10),
    choices     jsonb NOT NULL,                      -- web.calendar.Choices (model_dump)
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL                 -- the latest expiry of its jobs' results
);
CREATE INDEX subscriptions_expires_idx ON subscriptions (expires_at);
