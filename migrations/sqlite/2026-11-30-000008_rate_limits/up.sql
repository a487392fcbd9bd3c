-- Rate-limit budgets shared by the processes serving one PostgreSQL database
-- (rate_limits.shared): per rule and principal, the GCRA's theoretical arrival time in
-- microseconds since the epoch. A row whose time has passed is a full budget and is swept.
-- (Created on SQLite too, for one schema; a single SQLite process counts in memory.)
CREATE TABLE rate_limit_buckets (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
