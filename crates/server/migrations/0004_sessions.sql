-- Console sessions, so a restart does not sign everyone out. Keyed by the
-- SHA-256 of the cookie's secret: what is stored cannot be replayed.
CREATE TABLE sessions (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
