//! Sessions, login throttling and the pacing of denial records: the rules
//! of access control, with time passed in as milliseconds and session ids
//! made by the caller.

use std::collections::HashMap;
use std::net::IpAddr;

use canary_shared::Role;

/// One signed-in console user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// A short, non-secret name for the session, shown to admins and used to
    /// revoke it; never the cookie's value.
    pub handle: String,
    /// Who signed in.
    pub user: String,
    /// What the user may do.
    pub role: Role,
    /// When the login happened.
    pub created_ms: u64,
    /// When the session was last used.
    pub last_seen_ms: u64,
    /// Signed in with the identity provider (OpenID Connect), not a
    /// password: its role came from the person's groups then, and signing
    /// out also goes to the provider.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_sign_on: bool,
}

/// Why a session cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    /// No such session (never existed, logged out or revoked).
    #[error("the session is not valid (signed out or revoked); sign in again")]
    Unknown,
    /// Unused for longer than the idle timeout.
    #[error("the session ended after a period without use; sign in again")]
    Idle,
    /// Older than the absolute timeout.
    #[error("the session reached its maximum age; sign in again")]
    Expired,
}

/// Every live session, keyed by what the caller derives from the cookie's
/// secret (its hash, so that what is kept, and saved, cannot be replayed).
#[derive(Debug)]
pub struct Sessions {
    by_secret: HashMap<String, Session>,
    idle_ms: u64,
    absolute_ms: u64,
}

impl Sessions {
    /// No sessions yet; they end after `idle_ms` without use or `absolute_ms` after login.
    pub fn new(idle_ms: u64, absolute_ms: u64) -> Sessions {
        Sessions {
            by_secret: HashMap::new(),
            idle_ms,
            absolute_ms,
        }
    }

    /// Starts a session under `secret` (made by the caller from a secure
    /// random source); `handle` names it without revealing the secret.
    pub fn create(&mut self, secret: String, handle: String, user: &str, role: Role, now_ms: u64) {
        self.create_for(secret, handle, user, role, false, now_ms);
    }

    /// Like [`Sessions::create`], for a sign-in with the identity provider
    /// when `single_sign_on`.
    pub fn create_for(
        &mut self,
        secret: String,
        handle: String,
        user: &str,
        role: Role,
        single_sign_on: bool,
        now_ms: u64,
    ) {
        self.prune(now_ms);
        self.by_secret.insert(
            secret,
            Session {
                handle,
                user: user.to_owned(),
                role,
                created_ms: now_ms,
                last_seen_ms: now_ms,
                single_sign_on,
            },
        );
    }

    /// The session behind `secret` if it is still valid, marking it used;
    /// an ended session is forgotten.
    pub fn check(&mut self, secret: &str, now_ms: u64) -> Result<Session, SessionRefused> {
        let verdict = self.peek(secret, now_ms);
        match verdict {
            Ok(()) => {
                let session = self
                    .by_secret
                    .get_mut(secret)
                    .expect("peek found the session");
                session.last_seen_ms = now_ms;
                Ok(session.clone())
            }
            Err(refused) => {
                self.by_secret.remove(secret);
                Err(refused)
            }
        }
    }

    /// Whether the session behind `secret` is still valid, without marking it used.
    pub fn peek(&self, secret: &str, now_ms: u64) -> Result<(), SessionRefused> {
        let session = self.by_secret.get(secret).ok_or(SessionRefused::Unknown)?;
        if now_ms.saturating_sub(session.created_ms) >= self.absolute_ms {
            return Err(SessionRefused::Expired);
        }
        if now_ms.saturating_sub(session.last_seen_ms) >= self.idle_ms {
            return Err(SessionRefused::Idle);
        }
        Ok(())
    }

    /// Ends the session behind `secret` (logout).
    pub fn end(&mut self, secret: &str) -> Option<Session> {
        self.by_secret.remove(secret)
    }

    /// Ends the session named `handle` (an admin's revocation); returns
    /// its key and what it was.
    pub fn revoke(&mut self, handle: &str) -> Option<(String, Session)> {
        let secret = self
            .by_secret
            .iter()
            .find(|(_, session)| session.handle == handle)
            .map(|(secret, _)| secret.clone())?;
        self.by_secret.remove_entry(&secret)
    }

    /// Takes back a saved session (after a restart) unless it has ended by
    /// now; returns whether it is live.
    pub fn restore(&mut self, key: String, session: Session, now_ms: u64) -> bool {
        let live = now_ms.saturating_sub(session.created_ms) < self.absolute_ms
            && now_ms.saturating_sub(session.last_seen_ms) < self.idle_ms;
        if live {
            self.by_secret.insert(key, session);
        }
        live
    }

    /// The live sessions, oldest login first.
    pub fn list(&mut self, now_ms: u64) -> Vec<Session> {
        self.prune(now_ms);
        let mut sessions: Vec<Session> = self.by_secret.values().cloned().collect();
        sessions.sort_by(|a, b| (a.created_ms, &a.handle).cmp(&(b.created_ms, &b.handle)));
        sessions
    }

    /// Forgets every ended session.
    fn prune(&mut self, now_ms: u64) {
        let (idle_ms, absolute_ms) = (self.idle_ms, self.absolute_ms);
        self.by_secret.retain(|_, session| {
            now_ms.saturating_sub(session.created_ms) < absolute_ms
                && now_ms.saturating_sub(session.last_seen_ms) < idle_ms
        });
    }
}

// === Login throttling ===

/// Failed logins allowed for one user name from one source before it has to wait.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// Failed logins allowed from one source across all user names (people
/// behind one address mistype too) before the whole source has to wait.
pub const FREE_SOURCE_FAILURES: u32 = 20;
/// The longest wait after repeated failures.
const MAX_LOCKOUT_MS: u64 = 15 * 60 * 1000;
/// A record's failures are forgotten after this long without a new one.
const FORGET_FAILURES_MS: u64 = 15 * 60 * 1000;
/// Records kept at most per kind, so a flood of addresses or names cannot exhaust memory.
const MAX_SOURCES: usize = 10_000;
/// User names longer than this are throttled (and shown) by their first characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last_ms: u64,
    locked_until_ms: u64,
}

impl Failures {
    fn wait_ms(&self, now_ms: u64) -> Option<u64> {
        (self.locked_until_ms > now_ms).then(|| self.locked_until_ms - now_ms)
    }

    /// One more failure; past `free` ones, a lockout twice as long as the last.
    fn add(&mut self, now_ms: u64, free: u32) {
        if now_ms.saturating_sub(self.last_ms) >= FORGET_FAILURES_MS {
            self.count = 0;
        }
        self.count += 1;
        self.last_ms = now_ms;
        if self.count > free {
            let doublings = (self.count - free - 1).min(20);
            let lockout_ms = (1000_u64 << doublings).min(MAX_LOCKOUT_MS);
            self.locked_until_ms = now_ms + lockout_ms;
        }
    }

    /// Takes one failure back (a reserved attempt that succeeded).
    fn take_back(&mut self, free: u32) {
        self.count = self.count.saturating_sub(1);
        if self.count <= free {
            self.locked_until_ms = 0;
        }
    }
}

/// Failure records by key, bounded in number.
#[derive(Debug)]
struct FailureBook<K> {
    records: HashMap<K, Failures>,
}

impl<K> Default for FailureBook<K> {
    fn default() -> Self {
        FailureBook {
            records: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> FailureBook<K> {
    fn wait_ms(&self, key: &K, now_ms: u64) -> Option<u64> {
        self.records
            .get(key)
            .and_then(|failures| failures.wait_ms(now_ms))
    }

    fn add(&mut self, key: K, now_ms: u64, free: u32) {
        if self.records.len() >= MAX_SOURCES && !self.records.contains_key(&key) {
            self.records
                .retain(|_, failures| now_ms.saturating_sub(failures.last_ms) < FORGET_FAILURES_MS);
            if self.records.len() >= MAX_SOURCES
                && let Some(oldest) = self
                    .records
                    .iter()
                    .min_by_key(|(_, failures)| failures.last_ms)
                    .map(|(key, _)| key.clone())
            {
                self.records.remove(&oldest);
            }
        }
        self.records
            .entry(key)
            .or_insert(Failures {
                count: 0,
                last_ms: now_ms,
                locked_until_ms: 0,
            })
            .add(now_ms, free);
    }
}

/// Slows password guessing: after [`FREE_LOGIN_FAILURES`] failures for one
/// user name from one source, or [`FREE_SOURCE_FAILURES`] from one source
/// in all, each further failure locks that name at that source (or the
/// whole source) out for twice as long as the one before (1 s, 2 s, 4 s, …
/// up to 15 min).
///
/// An attempt is counted as failed when it starts ([`LoginThrottle::begin`])
/// and taken back when it succeeds, so concurrent guesses cannot all pass
/// the check before the first of them is recorded. A success clears only
/// its own user name's record: signing in as one user never buys more
/// guesses against another.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    sources: FailureBook<IpAddr>,
    names: FailureBook<(IpAddr, String)>,
}

impl LoginThrottle {
    /// Starts an attempt to sign in as `user` from `source`: `Err(wait_ms)`
    /// while either is locked out; otherwise the attempt is counted as a
    /// failure until [`LoginThrottle::succeeded`] takes it back.
    pub fn begin(&mut self, source: IpAddr, user: &str, now_ms: u64) -> Result<(), u64> {
        let name_key = (source, throttle_name(user));
        let wait = self
            .sources
            .wait_ms(&source, now_ms)
            .max(self.names.wait_ms(&name_key, now_ms));
        if let Some(wait_ms) = wait {
            return Err(wait_ms);
        }
        self.sources.add(source, now_ms, FREE_SOURCE_FAILURES);
        self.names.add(name_key, now_ms, FREE_LOGIN_FAILURES);
        Ok(())
    }

    /// The attempt begun for `user` from `source` succeeded: its own
    /// record is cleared, and the source's count takes back that attempt.
    pub fn succeeded(&mut self, source: IpAddr, user: &str) {
        self.names.records.remove(&(source, throttle_name(user)));
        if let Some(failures) = self.sources.records.get_mut(&source) {
            failures.take_back(FREE_SOURCE_FAILURES);
        }
    }
}

/// The key a user name is throttled under: bounded, so a megabyte of name
/// costs no more memory than a short one.
fn throttle_name(user: &str) -> String {
    user.chars().take(MAX_NAME_CHARS).collect()
}

/// A client-supplied string made safe to log and to store: control
/// characters (line breaks, terminal escapes) written as escapes, and at
/// most `max_chars` characters kept, with `…` when cut.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (index, character) in text.chars().enumerate() {
        if index == max_chars {
            out.push('…');
            break;
        }
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    out
}

// === Pacing denial records ===

/// How often one source's denied requests reach the audit trail.
pub const DENIAL_RECORD_EVERY_MS: u64 = 60_000;

/// Lets one denial per source and minute through to the audit trail and
/// counts the ones held back, so a client retrying in a loop cannot flood it.
#[derive(Debug, Default)]
pub struct DenialPacer {
    sources: HashMap<IpAddr, (u64, u64)>,
}

impl DenialPacer {
    /// `Some(n_held_back)` when this denial should be recorded, with the
    /// number held back since the last record; `None` to hold it back.
    pub fn admit(&mut self, source: IpAddr, now_ms: u64) -> Option<u64> {
        if self.sources.len() >= MAX_SOURCES {
            self.sources
                .retain(|_, (last_ms, _)| now_ms.saturating_sub(*last_ms) < DENIAL_RECORD_EVERY_MS);
        }
        match self.sources.get_mut(&source) {
            Some((last_ms, held_back))
                if now_ms.saturating_sub(*last_ms) < DENIAL_RECORD_EVERY_MS =>
            {
                *held_back += 1;
                None
            }
            Some((last_ms, held_back)) => {
                let earlier = *held_back;
                *last_ms = now_ms;
                *held_back = 0;
                Some(earlier)
            }
            None => {
                self.sources.insert(source, (now_ms, 0));
                Some(0)
            }
        }
    }
}

/// Which role an authenticating proxy's groups give (`auth.proxy.roles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRoles {
    /// Each role with the groups that give it.
    pub by_role: Vec<(Role, Vec<String>)>,
    /// The role of a person in none of them; `None` refuses them.
    pub unmapped: Option<Role>,
}

impl GroupRoles {
    /// The highest role any of `groups` gives (names compared exactly,
    /// after trimming spaces), else the unmapped role.
    pub fn role_for<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        let groups: Vec<&str> = groups
            .into_iter()
            .map(str::trim)
            .filter(|group| !group.is_empty())
            .collect();
        self.by_role
            .iter()
            .filter(|(_, mapped)| mapped.iter().any(|group| groups.contains(&group.as_str())))
            .map(|(role, _)| *role)
            .max_by_key(|role| rank(*role))
            .or(self.unmapped)
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Admin => 2,
    }
}

#[cfg(test)]
mod tests;
