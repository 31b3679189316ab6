//! The durable store: SQLite in WAL mode with `synchronous=FULL`, so a
//! commit that returned survives a crash or power loss.
//!
//! One writer (the controller) saves the deployment and appends audit entries
//! in one transaction; a command is acknowledged only after that commit. A
//! lock file keeps a second server off the same data directory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use canary_shared::{
    AuditEvent, AuditMetrics, AuditPage, CanaryShare, Phase, SecondSample, Side, UnixMillis,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::domain::access::Session;
use crate::domain::deployment::{AuditRecord, Deployment};
use crate::domain::judge::RolloutJudge;

mod lock_file;
mod push;

pub use lock_file::Pulled;
use lock_file::{LockError, LockFile};
pub use push::{NewSubscription, StoredSubscription};

/// The migrations, in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_metrics_history.sql"),
    include_str!("../../migrations/0003_judge.sql"),
    include_str!("../../migrations/0004_sessions.sql"),
    include_str!("../../migrations/0005_store_meta.sql"),
    include_str!("../../migrations/0006_push.sql"),
];

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another server holds the data directory.
    #[error(
        "another canary server is using the data directory {} (it holds {}); stop it, or give this one another --data-dir",
        dir.display(),
        lock.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The data directory or its files could not be used.
    #[error("cannot use the data directory {}: {source}", dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed (disk full, read-only file system, corruption, …).
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("stored data cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// An audit record with what the controller adds to it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// The decision.
    pub record: AuditRecord,
    /// Both sides' figures at that moment.
    pub metrics: Option<AuditMetrics>,
    /// A hook's output, when one ran.
    pub output: Option<String>,
}

/// How the store was found when it was opened: what the `recovered` audit
/// entry tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opening {
    /// The store is a backup put in place: when the backup was taken.
    pub restored_from: Option<UnixMillis>,
    /// The last server stopped gracefully (else it crashed or was killed,
    /// or this is a restore).
    pub clean_stop: bool,
    /// Audit sequence numbers this data directory issued that the store
    /// does not hold (after a restore from an older backup): never reused,
    /// since an external log may already hold them.
    pub missing_seqs: Option<(u64, u64)>,
    /// A canary the last server pulled (its share dropped to 0 %) without
    /// recording the decision before it stopped.
    pub pulled: Option<Pulled>,
}

/// What was saved: the deployment and the state revision it was shown at.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// The deployment.
    pub deployment: Deployment,
    /// The revision of the state when it was saved.
    pub revision: u64,
}

/// The most audit entries one page holds.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// Filters for reading the audit trail, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    /// Only entries with a sequence number below this.
    pub before: Option<u64>,
    /// At most this many (capped at [`MAX_AUDIT_PAGE`]).
    pub limit: u32,
    /// Only this actor's entries.
    pub actor: Option<String>,
    /// Only this action's entries.
    pub action: Option<String>,
}

/// The SQLite store. The connection sits behind a `Mutex` because rusqlite's
/// connection is not `Sync`; only the controller writes, so it never waits long.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
    /// Held open for the store's life: the OS lock on it is the single-writer
    /// guard. It also holds the highest audit sequence number ever issued in
    /// this directory, which a restored `canary.db` cannot take back.
    lock: Option<LockFile>,
    /// How the store was found.
    opening: Opening,
    /// The sequence number the next audit entry must take, when numbers
    /// were issued that the store does not hold.
    next_seq: Mutex<Option<u64>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, refusing if another
    /// server holds it.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let io = |source| StoreError::Io {
            dir: data_dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let lock_path = data_dir.join("canary.lock");
        let lock = match LockFile::open(&lock_path) {
            Ok(lock) => lock,
            Err(LockError::Held) => {
                return Err(StoreError::Locked {
                    dir: data_dir.to_owned(),
                    lock: lock_path,
                });
            }
            Err(LockError::Io(err)) => return Err(io(err)),
        };
        let (issued, pulled) = lock.read().map_err(io)?;
        let connection = Connection::open(data_dir.join("canary.db"))?;
        let mut store = SqliteStore {
            connection: Mutex::new(connection),
            lock: Some(lock),
            opening: Opening::default(),
            next_seq: Mutex::new(None),
        };
        store.prepare()?;
        store.opening = store.read_opening(issued)?;
        store.opening.pulled = pulled;
        if let Some((first_missing, _)) = store.opening.missing_seqs {
            let highest = store
                .opening
                .missing_seqs
                .map_or(first_missing, |(_, last)| last);
            *store
                .next_seq
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(highest + 1);
        }
        Ok(store)
    }

    /// How the store was found when it was opened.
    pub fn opening(&self) -> &Opening {
        &self.opening
    }

    /// Reads and clears the stamps a backup or a graceful stop left, and
    /// compares the trail with the numbers this directory issued.
    fn read_opening(&self, issued: u64) -> Result<Opening, StoreError> {
        let connection = self.connection();
        let (backup_taken_at, clean_stop_at): (Option<u64>, Option<u64>) = connection
            .query_row(
                "SELECT backup_taken_at, clean_stop_at FROM store_meta WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .unwrap_or((None, None));
        connection.execute("DELETE FROM store_meta", [])?;
        let held: u64 =
            connection.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |row| {
                row.get(0)
            })?;
        Ok(Opening {
            restored_from: backup_taken_at.map(UnixMillis),
            clean_stop: clean_stop_at.is_some(),
            missing_seqs: (issued > held).then_some((held + 1, issued)),
            pulled: None,
        })
    }

    /// Notes that the server stops gracefully, for the next start's
    /// `recovered` entry.
    pub fn mark_clean_stop(&self, now: UnixMillis) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT INTO store_meta (id, clean_stop_at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET clean_stop_at = excluded.clean_stop_at",
            [now.0],
        )?;
        Ok(())
    }

    /// Remembers `seq` as the highest number issued, in the lock file, so a
    /// restored older store never hands it out again.
    fn note_issued(&self, seq: u64) {
        let Some(lock) = &self.lock else { return };
        if let Err(err) = lock.write_issued(seq) {
            tracing::warn!(%err, seq, "cannot note the highest audit sequence number issued");
        }
    }

    /// Notes, before the proxy's share drops to 0 %, that the running
    /// rollout's canary is being pulled and why: a server that dies before
    /// the decision is committed leaves it for the next start, which ends
    /// the rollout at 0 % instead of resuming it. Cleared by
    /// [`SqliteStore::clear_pulled`] once the decision is recorded.
    pub fn note_pulled(&self, pulled: &Pulled) {
        let Some(lock) = &self.lock else { return };
        if let Err(err) = lock.write_pulled(Some(pulled)) {
            tracing::warn!(%err, "cannot note the canary pulled before its decision is recorded");
        }
    }

    /// Forgets the pulled canary once its decision is recorded.
    pub fn clear_pulled(&self) {
        let Some(lock) = &self.lock else { return };
        if let Err(err) = lock.write_pulled(None) {
            tracing::warn!(%err, "cannot clear the pulled canary's note");
        }
    }

    /// Writes a consistent copy of the store in `data_dir` to `to` (a new
    /// file; its folder is made if needed), while a server may be using it:
    /// SQLite's `VACUUM INTO` reads one snapshot, so the copy is never
    /// half-written. The copy is stamped with `now`, so a server started on
    /// it knows it is a restore and from when.
    pub fn backup(data_dir: &Path, to: &Path, now: UnixMillis) -> Result<(), StoreError> {
        let source = data_dir.join("canary.db");
        if !source.exists() {
            return Err(StoreError::Io {
                dir: data_dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no store at {}", source.display()),
                ),
            });
        }
        if to.exists() {
            return Err(StoreError::Io {
                dir: to.parent().unwrap_or(Path::new(".")).to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists; a backup never overwrites a file", to.display()),
                ),
            });
        }
        let connection = Connection::open_with_flags(
            &source,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        if let Some(folder) = to.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::Io {
                dir: folder.to_owned(),
                source,
            })?;
        }
        connection.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        let copy = Connection::open(to)?;
        copy.execute(
            "INSERT INTO store_meta (id, backup_taken_at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET backup_taken_at = excluded.backup_taken_at, clean_stop_at = NULL",
            [now.0],
        )?;
        Ok(())
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let store = SqliteStore {
            connection: Mutex::new(Connection::open_in_memory()?),
            lock: None,
            opening: Opening::default(),
            next_seq: Mutex::new(None),
        };
        store.prepare()?;
        Ok(store)
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn prepare(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        // WAL lets readers (the audit API) run beside the writer; FULL makes
        // every commit durable before it returns.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        let applied: usize =
            connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = connection.transaction()?;
            transaction.execute_batch(migration)?;
            transaction.pragma_update(None, "user_version", index + 1)?;
            transaction.commit()?;
        }
        Ok(())
    }

    /// Makes every later write fail, as a full or read-only disk would.
    #[cfg(test)]
    pub(crate) fn fail_writes(&self) {
        self.connection()
            .pragma_update(None, "query_only", true)
            .expect("query_only is a plain pragma");
    }

    /// Takes writes again after [`SqliteStore::fail_writes`], as a disk
    /// with space again would.
    #[cfg(test)]
    pub(crate) fn allow_writes(&self) {
        self.connection()
            .pragma_update(None, "query_only", false)
            .expect("query_only is a plain pragma");
    }

    /// The saved deployment, if any was saved.
    pub fn load(&self) -> Result<Option<Saved>, StoreError> {
        let row: Option<(u64, String)> = self
            .connection()
            .query_row(
                "SELECT revision, body FROM deployment WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        row.map(|(revision, body)| {
            Ok(Saved {
                deployment: serde_json::from_str(&body)?,
                revision,
            })
        })
        .transpose()
    }

    /// Saves `deployment` at `revision` and appends `entries`, all or
    /// nothing; returns the entries as stored, with their sequence numbers.
    pub fn commit(
        &self,
        deployment: &Deployment,
        revision: u64,
        entries: &[AuditEntry],
        now: UnixMillis,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let body = serde_json::to_string(deployment)?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO deployment (id, revision, body, updated_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, body = excluded.body, updated_at = excluded.updated_at",
            params![revision, body, now.0],
        )?;
        let mut stored = Vec::with_capacity(entries.len());
        for entry in entries {
            let record = &entry.record;
            let metrics = entry
                .metrics
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?;
            // NULL lets SQLite number it (one past the highest); after a
            // restore the first entry takes the number past those issued.
            let seq = *self
                .next_seq
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            transaction.execute(
                "INSERT INTO audit (seq, at, actor, action, from_phase, to_phase, from_basis_points, to_basis_points, reason, metrics, output)
                 VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    record.at.0,
                    record.actor,
                    record.action.as_str(),
                    phase_text(record.from_phase)?,
                    phase_text(record.to_phase)?,
                    record.from_share.basis_points(),
                    record.to_share.basis_points(),
                    record.reason,
                    metrics,
                    entry.output,
                    seq.filter(|_| stored.is_empty()),
                ],
            )?;
            stored.push(AuditEvent {
                seq: u64::try_from(transaction.last_insert_rowid()).unwrap_or_default(),
                at: record.at,
                actor: record.actor.clone(),
                action: record.action.as_str().to_owned(),
                from_phase: record.from_phase,
                to_phase: record.to_phase,
                from_percent: record.from_share,
                to_percent: record.to_share,
                reason: record.reason.clone(),
                metrics: entry.metrics.clone().map(Box::new),
                output: entry.output.clone(),
            });
        }
        transaction.commit()?;
        if let Some(last) = stored.last() {
            *self
                .next_seq
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            self.note_issued(last.seq);
        }
        Ok(stored)
    }

    /// Saves the statistical judge of the rollout started at `rollout`,
    /// replacing any earlier one.
    pub fn save_judge(
        &self,
        rollout: UnixMillis,
        judge: &RolloutJudge,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(judge)?;
        self.connection().execute(
            "INSERT INTO judge (id, rollout_started_at, body, updated_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET rollout_started_at = excluded.rollout_started_at, body = excluded.body, updated_at = excluded.updated_at",
            params![rollout.0, body, now.0],
        )?;
        Ok(())
    }

    /// The saved statistical judge and the start of the rollout it judged.
    pub fn load_judge(&self) -> Result<Option<(UnixMillis, RolloutJudge)>, StoreError> {
        let row: Option<(u64, String)> = self
            .connection()
            .query_row(
                "SELECT rollout_started_at, body FROM judge WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        row.map(|(rollout, body)| Ok((UnixMillis(rollout), serde_json::from_str(&body)?)))
            .transpose()
    }

    /// Saves (or updates) the console session under `key`.
    pub fn save_session(&self, key: &str, session: &Session) -> Result<(), StoreError> {
        let body = serde_json::to_string(session)?;
        self.connection().execute(
            "INSERT INTO sessions (key, body) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET body = excluded.body",
            params![key, body],
        )?;
        Ok(())
    }

    /// Forgets the console session under `key`.
    pub fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.connection()
            .execute("DELETE FROM sessions WHERE key = ?1", params![key])?;
        Ok(())
    }

    /// Every saved console session with its key.
    pub fn sessions(&self) -> Result<Vec<(String, Session)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare("SELECT key, body FROM sessions")?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(key, body)| Ok((key, serde_json::from_str(&body)?)))
            .collect()
    }

    /// A page of the audit trail, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_AUDIT_PAGE);
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT seq, at, actor, action, from_phase, to_phase, from_basis_points, to_basis_points, reason, metrics, output
             FROM audit
             WHERE (?1 IS NULL OR seq < ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3)
             ORDER BY seq DESC LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![query.before, query.actor, query.action, limit + 1],
            |row| {
                Ok((
                    row.get::<_, u64>(0)?,
                    row.get::<_, u64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, u16>(6)?,
                    row.get::<_, u16>(7)?,
                    row.get::<_, Option<String>>(8)?,
                    row.get::<_, Option<String>>(9)?,
                    row.get::<_, Option<String>>(10)?,
                ))
            },
        )?;
        let mut events = Vec::new();
        for row in rows {
            let (
                seq,
                at,
                actor,
                action,
                from_phase,
                to_phase,
                from_bp,
                to_bp,
                reason,
                metrics,
                output,
            ) = row?;
            events.push(AuditEvent {
                seq,
                at: UnixMillis(at),
                actor,
                action,
                from_phase: parse_phase(&from_phase)?,
                to_phase: parse_phase(&to_phase)?,
                from_percent: CanaryShare::from_basis_points(from_bp).unwrap_or_default(),
                to_percent: CanaryShare::from_basis_points(to_bp).unwrap_or_default(),
                reason,
                metrics: metrics
                    .map(|json| serde_json::from_str(&json))
                    .transpose()?,
                output,
            });
        }
        let next_before = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|event| event.seq)
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_before,
        })
    }

    /// Keeps one second of both sides and forgets seconds before `keep_since`.
    pub fn record_second(
        &self,
        production: &SecondSample,
        canary: &SecondSample,
        keep_since: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        for (side, sample) in [("production", production), ("canary", canary)] {
            transaction.execute(
                "INSERT OR REPLACE INTO metrics_seconds (at, side, sample) VALUES (?1, ?2, ?3)",
                params![sample.at.0, side, serde_json::to_string(sample)?],
            )?;
        }
        transaction.execute(
            "DELETE FROM metrics_seconds WHERE at < ?1",
            params![keep_since.0],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The stored seconds of `side` from `since` on, oldest first (at most `limit`).
    pub fn seconds(
        &self,
        side: Side,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<SecondSample>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT sample FROM metrics_seconds WHERE side = ?1 AND at >= ?2 ORDER BY at LIMIT ?3",
        )?;
        let rows = statement.query_map(params![side.as_str(), since.0, limit], |row| {
            row.get::<_, String>(0)
        })?;
        let mut samples = Vec::new();
        for row in rows {
            samples.push(serde_json::from_str(&row?)?);
        }
        Ok(samples)
    }

    /// The answer given to an earlier command with this idempotency key.
    pub fn idempotent_answer(&self, key: &str) -> Result<Option<(u16, String)>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT status, body FROM idempotency WHERE key = ?1",
                params![key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// Remembers the answer to a command with an idempotency key.
    pub fn remember_answer(
        &self,
        key: &str,
        status: u16,
        body: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT OR IGNORE INTO idempotency (key, status, body, at) VALUES (?1, ?2, ?3, ?4)",
            params![key, status, body, now.0],
        )?;
        Ok(())
    }
}

fn phase_text(phase: Phase) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_value(phase)?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn parse_phase(text: &str) -> Result<Phase, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests;
