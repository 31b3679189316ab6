-- How the store was last left, read (and cleared) when a server opens it:
-- a backup stamps its copy, a graceful stop stamps the store.
CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    backup_taken_at INTEGER,
    clean_stop_at INTEGER
);
