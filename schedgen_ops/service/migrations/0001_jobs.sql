-- Job ledger: Postgres is the system of record; Redis only carries job ids to workers.
CREATE TABLE jobs (
    id            text PRIMARY KEY,                 -- 128-bit random, hex
    status        text NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    kind          text,                             -- lectures | tests | exams, known after parsing
    priority      text NOT NULL DEFAULT 'default' CHECK (priority IN ('high', 'default', 'low')),
    client_id     text NOT NULL,
    filename      text,
    size_bytes    integer NOT NULL,
    pages         integer,
    sha256        text NOT NULL,
    storage_key   text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    error_code    text,
    error_message text,
    bytes_deleted boolean NOT NULL DEFAULT false,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX jobs_status_idx ON jobs (status, updated_at);
CREATE INDEX jobs_expires_idx ON jobs (expires_at);

CREATE TABLE results (
    job_id     text PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind       text NOT NULL,
    timetable  jsonb NOT NULL,   -- the parser's Timetable model (model_dump)
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,                   -- public part, shown in listings
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,               -- sha256 of the whole key; the key itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    last_used_at timestamptz
);
