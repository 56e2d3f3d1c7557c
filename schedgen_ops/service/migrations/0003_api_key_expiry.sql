-- Short-lived API keys. Load-test keys minted through POST /api/ops/loadtest-keys carry an expiry, so a
-- run killed before it revokes them leaves nothing usable behind; key validation refuses a key past it.
-- NULL = never expires (keys from `schedgen apikeys create`).
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
-- Set only on load-test keys: DELETE /api/ops/loadtest-keys/{label} revokes by it, so it can never touch
-- a client's key whatever that key is named.
ALTER TABLE api_keys ADD COLUMN loadtest_label text;
CREATE INDEX api_keys_loadtest_label_idx ON api_keys (loadtest_label) WHERE loadtest_label IS NOT NULL;
CREATE INDEX api_keys_loadtest_expires_idx ON api_keys (expires_at) WHERE loadtest_label IS NOT NULL;
