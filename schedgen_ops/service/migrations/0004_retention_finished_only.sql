-- Retention counts only from when a job finished: an accepted upload that still waits (a worker outage, a
-- restore of an old backup) is never purged. Unfinished jobs carry no expiry; complete/fail set it.
ALTER TABLE jobs ALTER COLUMN expires_at DROP NOT NULL;
-- Rows written before this migration (or restored from such a backup) got an expiry at insert time.
UPDATE jobs SET expires_at = NULL WHERE status IN ('queued', 'processing');
-- Every finished job expires some day (complete/fail always set it).
ALTER TABLE jobs ADD CONSTRAINT jobs_finished_expire
    CHECK (status IN ('queued', 'processing') OR expires_at IS NOT NULL);
-- The reconciler pages queued/processing jobs by (created_at, id), and the oldest-queued-job gauge reads the
-- first entry: both are index range scans instead of scans of every row in that status.
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at, id);
-- The retention purge pages by (expires_at, id).
DROP INDEX jobs_expires_idx;
CREATE INDEX jobs_expires_idx ON jobs (expires_at, id);
