-- Backup ledger: one row per complete backup set, written by `schedgen backup` / `backup verify` /
-- `restore` through the target's psql, read by the api's /metrics at scrape time
-- (schedgen_backup_last_success_timestamp_seconds, schedgen_backup_last_verified_timestamp_seconds).
CREATE TABLE backup_ledger (
    backup_id     text PRIMARY KEY,                 -- the set's id (UTC timestamp) in the backup directory
    finished_at   timestamptz NOT NULL,             -- when the set became complete
    target        text NOT NULL,                    -- local | compose | kubernetes
    reason        text NOT NULL DEFAULT '',
    verified_at   timestamptz,                      -- last verification of this set
    verify_level  text CHECK (verify_level IN ('standard', 'deep')),
    verify_status text CHECK (verify_status IN ('passed', 'failed')),
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backup_ledger_finished_idx ON backup_ledger (finished_at);
