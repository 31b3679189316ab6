-- canary's store: the current deployment, the audit trail, and per-second metrics.

-- One row: the deployment as the state machine left it, and the state revision.
CREATE TABLE deployment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Append-only: rows are inserted and never updated or deleted.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_phase TEXT NOT NULL,
    to_phase TEXT NOT NULL,
    from_basis_points INTEGER NOT NULL,
    to_basis_points INTEGER NOT NULL,
    reason TEXT,
    metrics TEXT,
    output TEXT
);
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE INDEX audit_by_action ON audit (action, seq);

-- Commands already answered, so a retried command with the same key applies once.
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    at INTEGER NOT NULL
);
