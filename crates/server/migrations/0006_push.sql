-- Web Push. The server's VAPID key pair, made on first start: every
-- subscription is bound to its public key, so the two live in one store
-- and a backup restores them together.
CREATE TABLE push_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    private_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- Devices that get push alerts: one row per browser subscription.
CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    label TEXT NOT NULL,
    events TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_delivered_at INTEGER,
    last_error TEXT
);
