-- The statistical judge's evidence for the running rollout, so a restart
-- resumes it instead of starting afresh. One row: only one rollout runs.
CREATE TABLE judge (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rollout_started_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
