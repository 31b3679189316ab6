//! The data directory's lock file, `canary.lock`: held locked for the
//! store's life (the single-writer guard), and two records written in
//! place at fixed offsets, so writing them never needs a new block of a
//! disk that may be full:
//! - the highest audit sequence number ever issued in this directory (a
//!   restored older `canary.db` cannot take it back), at offset 0;
//! - a canary pulled before its decision was recorded: the share dropped
//!   to 0 % in the proxy ahead of the commit (always safe, and a failing
//!   canary must not wait for the disk). A start that finds it ends the
//!   rollout at 0 % and says why; a commit clears it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use canary_shared::UnixMillis;

/// Where the pulled record starts: after the issued number's line.
const PULLED_AT: u64 = 21;
/// Its room, in bytes, line end included.
const PULLED_ROOM: usize = 512;

/// A canary whose share was dropped to 0 % before the decision was
/// recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The rollout (its first step's start).
    pub rollout: UnixMillis,
    /// When the share dropped.
    pub at: UnixMillis,
    /// The decision's reason.
    pub reason: String,
}

/// The open, locked lock file.
#[derive(Debug)]
pub(super) struct LockFile(File);

/// Why the lock file could not be taken.
pub(super) enum LockError {
    /// Another server holds it.
    Held,
    /// It could not be opened, read or locked.
    Io(std::io::Error),
}

impl LockFile {
    /// Opens and locks `path` (creating it), with room for both records.
    pub(super) fn open(path: &Path) -> Result<LockFile, LockError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LockError::Held),
            Err(std::fs::TryLockError::Error(err)) => return Err(LockError::Io(err)),
        }
        let lock = LockFile(file);
        let length = lock.0.metadata().map_err(LockError::Io)?.len();
        if length < PULLED_AT + PULLED_ROOM as u64 {
            // Written now, while there is room, so the record never grows the file.
            let (issued, pulled) = lock.read().map_err(LockError::Io)?;
            lock.write_issued(issued).map_err(LockError::Io)?;
            lock.write_pulled(pulled.as_ref()).map_err(LockError::Io)?;
        }
        Ok(lock)
    }

    /// The highest number issued (0 when none) and a pulled canary left
    /// by the last server, if any.
    pub(super) fn read(&self) -> std::io::Result<(u64, Option<Pulled>)> {
        // At offset 0 whatever was read or written before.
        let length = usize::try_from(self.0.metadata()?.len()).unwrap_or(usize::MAX);
        let mut bytes = vec![0; length.min(PULLED_AT as usize + PULLED_ROOM)];
        self.0.read_exact_at(&mut bytes, 0)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        let issued = lines
            .next()
            .and_then(|line| line.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let pulled = lines.next().and_then(|line| {
            let mut fields = line.trim().splitn(4, ' ');
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some("pulled"), Some(rollout), Some(at), reason) => Some(Pulled {
                    rollout: UnixMillis(rollout.parse().ok()?),
                    at: UnixMillis(at.parse().ok()?),
                    reason: reason.unwrap_or_default().to_owned(),
                }),
                _ => None,
            }
        });
        Ok((issued, pulled))
    }

    /// Writes the highest number issued, durably.
    pub(super) fn write_issued(&self, seq: u64) -> std::io::Result<()> {
        self.0.write_all_at(format!("{seq:>20}\n").as_bytes(), 0)?;
        self.0.sync_data()
    }

    /// Writes (or with `None` clears) the pulled record. Not synced: it
    /// must not hold the share's drop up, and what it guards against is
    /// the process dying, after which the page cache still holds it.
    pub(super) fn write_pulled(&self, pulled: Option<&Pulled>) -> std::io::Result<()> {
        let mut line = match pulled {
            Some(pulled) => {
                // One line: the reason's own line ends would cut it.
                let reason: String = pulled
                    .reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                format!("pulled {} {} {reason}", pulled.rollout.0, pulled.at.0)
            }
            None => String::new(),
        };
        // Cut to the room at a character boundary, then padded.
        while line.len() > PULLED_ROOM - 1 {
            line.pop();
        }
        let mut bytes = line.into_bytes();
        bytes.resize(PULLED_ROOM - 1, b' ');
        bytes.push(b'\n');
        self.0.write_all_at(&bytes, PULLED_AT)
    }
}

#[cfg(test)]
mod tests {
    use canary_shared::UnixMillis;

    use super::{LockFile, Pulled};

    #[test]
    fn both_records_read_back_and_a_cleared_pull_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary.lock");
        let lock = LockFile::open(&path).ok().unwrap();
        assert_eq!(lock.read().unwrap(), (0, None));
        let pulled = Pulled {
            rollout: UnixMillis(1_700_000_000_000),
            at: UnixMillis(1_700_000_005_000),
            reason: format!("statistical judge: fails\nmore {}", "é".repeat(600)),
        };
        lock.write_issued(42).unwrap();
        lock.write_pulled(Some(&pulled)).unwrap();
        drop(lock);
        let lock = LockFile::open(&path).ok().unwrap();
        let (issued, read) = lock.read().unwrap();
        assert_eq!(issued, 42);
        let read = read.expect("the pull survives a reopening");
        assert_eq!((read.rollout, read.at), (pulled.rollout, pulled.at));
        assert!(read.reason.starts_with("statistical judge: fails more é"));
        lock.write_pulled(None).unwrap();
        assert_eq!(lock.read().unwrap(), (42, None));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 21 + 512);
    }

    #[test]
    fn a_lock_file_from_before_the_pulled_record_keeps_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canary.lock");
        std::fs::write(&path, format!("{:>20}\n", 17)).unwrap();
        let lock = LockFile::open(&path).ok().unwrap();
        assert_eq!(lock.read().unwrap(), (17, None));
    }
}
