-- System figures sampled by every serving process, for /api/monitoring/history; pruned
-- after monitoring.retention_hours.
CREATE TABLE monitoring_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The process: <host>-<pid>.
    node TEXT NOT NULL,
    taken_at TIMESTAMP NOT NULL,
    -- Percent of the machine's CPUs and memory in use.
    cpu DOUBLE PRECISION NOT NULL,
    memory DOUBLE PRECISION NOT NULL,
    -- The process's resident bytes.
    process_memory BIGINT NOT NULL,
    -- Requests the process answered since its previous sample.
    requests BIGINT NOT NULL
);
CREATE INDEX monitoring_samples_taken_at ON monitoring_samples (taken_at);
