-- Per-second samples of each side, kept for server.metrics_retention, so the
-- charts' history survives a restart.
CREATE TABLE metrics_seconds (
    at INTEGER NOT NULL,
    side TEXT NOT NULL,
    sample TEXT NOT NULL,
    PRIMARY KEY (at, side)
);
