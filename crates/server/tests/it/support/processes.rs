//! The processes a test's scripts start: their ids, and whether they ended.

use super::eventually;

/// Whether process `pid` has ended: gone, or a zombie (a script's child,
/// reparented when the script ended, stays one where nothing reaps it).
pub(crate) fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The process id a test's script wrote to `file`, once it has.
pub(crate) async fn pid_written_to(file: &std::path::Path) -> u32 {
    eventually(
        "the script to write its background process's id",
        async || {
            std::fs::read_to_string(file)
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
        },
    )
    .await
}
