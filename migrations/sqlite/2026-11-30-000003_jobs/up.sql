-- The job queue: one row per job (its schedule, policy and where it stands), one row per run.
-- The placeholder tables of the first migration never held data.
DROP TABLE job_runs;
DROP TABLE jobs;

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The API key that created the job: it runs only while that key is live.
    api_key_id BIGINT REFERENCES api_keys(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- JSON: {"once": ts} | {"every_secs": n} | {"cron": expr, "timezone": tz}
    schedule TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout_secs INTEGER NOT NULL,
    -- What users see and filter by: scheduled|running|paused|succeeded|failed|cancelled.
    state TEXT NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT FALSE,
    -- A one-off job's final outcome (succeeded|failed|cancelled) once its occurrence ended.
    outcome TEXT,
    -- Start of the interval schedule's ticks.
    anchor_at TIMESTAMP NOT NULL,
    -- The schedule's next occurrence; NULL when it has none left.
    next_run_at TIMESTAMP,
    -- A failed attempt's retry time.
    retry_at TIMESTAMP,
    -- A run-now request waiting for a worker.
    run_now BOOLEAN NOT NULL DEFAULT FALSE,
    -- When a worker should claim the job (derived from the four above); NULL: not claimable.
    due_at TIMESTAMP,
    -- Attempts made in the current series (reset when a series succeeds or gives up).
    attempt INTEGER NOT NULL DEFAULT 0,
    -- What started the current series: schedule|manual.
    series TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    current_run_id BIGINT,
    last_run_id BIGINT,
    locked_by TEXT,
    lease_until TIMESTAMP,
    progress TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_due ON jobs (due_at);
CREATE INDEX jobs_owner ON jobs (owner_id, id);
CREATE INDEX jobs_lease ON jobs (lease_until);

CREATE TABLE job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    -- schedule|retry|manual
    cause TEXT NOT NULL,
    -- running|succeeded|failed|cancelled|timed_out|interrupted
    outcome TEXT NOT NULL,
    worker TEXT NOT NULL,
    output TEXT,
    error TEXT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX job_runs_job ON job_runs (job_id, id);
CREATE INDEX job_runs_finished ON job_runs (finished_at);
