//! Access control as an application service: the configured identities,
//! console sessions (kept across restarts), the sign-in throttle and the
//! bound on password checks, and the pacing of denial records. The HTTP
//! layer (`api/access.rs`) only calls it.

pub(crate) mod proxy_sign_in;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use canary_shared::{AuditAction, Role};
use tokio::time::Instant;

use crate::adapters::credentials;
use crate::adapters::store::SqliteStore;
use crate::config::{AuthConfig, Config};
use crate::controller::ControllerHandle;
use crate::domain::access::{
    DenialPacer, LoginThrottle, MAX_NAME_CHARS, Session, SessionRefused, Sessions, printable,
};

/// How often a session's use is saved at most; after a restart its idle
/// time may count from up to this much earlier.
const SAVE_USE_EVERY_MS: u64 = 60_000;

/// What sessions are kept and saved under: the SHA-256 of the cookie's
/// secret, so neither memory dumps nor the store hold a usable cookie.
pub(crate) fn session_key(secret: &str) -> String {
    credentials::token_hash(secret)
}

/// The configured identities, sessions, the login throttle and the pacing
/// of denial records; one per server, shared by all requests.
#[derive(Debug)]
pub struct AccessControl {
    /// `None` when logins are off (loopback only).
    pub(crate) identities: Option<Identities>,
    /// Locked for a lookup or an update, never across an `.await`.
    sessions: Mutex<Sessions>,
    /// Locked for a lookup or an update, never across an `.await`.
    throttle: Mutex<LoginThrottle>,
    /// Password verifications running at once. Each is an argon2 computation
    /// of about 19 MiB, so without a bound a crowd of sign-in attempts is a
    /// way to exhaust the server's memory; taken by `login` around argon2.
    verifications: Arc<tokio::sync::Semaphore>,
    /// argon2's working memory, one per verification slot, reused so that
    /// memory stays flat however many attempts come.
    verifier_memory: Arc<Mutex<Vec<credentials::VerifierMemory>>>,
    /// Sign-ins waiting for a verification slot; past
    /// [`MAX_WAITING_VERIFICATIONS`] the next one gets 429 at once.
    waiting_verifications: std::sync::atomic::AtomicUsize,
    /// Locked for a lookup or an update, never across an `.await`.
    denials: Mutex<DenialPacer>,
    /// The session cookie carries `Secure` when the console is served over TLS.
    secure_cookie: bool,
    /// Session times are wall-clock milliseconds at start plus monotonic
    /// time since: a clock jump while serving cannot end or extend a
    /// session, and saved sessions keep their times across a restart.
    epoch: Instant,
    epoch_wall_ms: u64,
    /// Session saves for the one task that writes them to the store, so a
    /// restart does not sign everyone out.
    saves: tokio::sync::mpsc::UnboundedSender<SessionSave>,
    /// When each session's use was last saved: it is saved at most once a
    /// minute, not on every request.
    saved_use: Mutex<HashMap<String, u64>>,
    /// Who the authenticating proxy has signed in since this server
    /// started, with which role (each recorded once).
    proxy_seen: Mutex<std::collections::HashSet<(String, Role)>>,
    /// Access decisions go into the audit trail through the controller.
    controller: ControllerHandle,
}

/// A session to save (or forget, with `None`), and who waits for it.
#[derive(Debug)]
struct SessionSave {
    key: String,
    session: Option<Session>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The task that writes session changes to the store, one after another.
fn spawn_session_writer(
    store: std::sync::Arc<SqliteStore>,
) -> tokio::sync::mpsc::UnboundedSender<SessionSave> {
    let (saves, mut pending) = tokio::sync::mpsc::unbounded_channel::<SessionSave>();
    tokio::spawn(async move {
        while let Some(SessionSave { key, session, done }) = pending.recv().await {
            let store = std::sync::Arc::clone(&store);
            let written = tokio::task::spawn_blocking(move || match &session {
                Some(session) => store.save_session(&key, session),
                None => store.delete_session(&key),
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!("cannot save a console session; a restart would sign it out");
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
    });
    saves
}

/// Takes back the sessions saved before a restart that are still live and
/// whose user the config still has; a user's role comes from the config as
/// it is now. The rest are forgotten.
fn restore_sessions(
    sessions: &mut Sessions,
    identities: Option<&Identities>,
    store: &SqliteStore,
    now_ms: u64,
) {
    let saved = match store.sessions() {
        Ok(saved) => saved,
        Err(err) => {
            tracing::warn!(%err, "cannot read the saved console sessions; everyone signs in again");
            return;
        }
    };
    let mut restored = 0usize;
    for (key, mut session) in saved {
        let role = identities.and_then(|identities| identities.users.get(&session.user));
        let live = match role {
            // A single sign-on keeps the role its groups gave, while the
            // config still signs people in that way.
            _ if session.single_sign_on => {
                identities.is_some_and(|identities| identities.single_sign_on)
                    && sessions.restore(key.clone(), session, now_ms)
            }
            Some((role, _)) => {
                session.role = *role;
                sessions.restore(key.clone(), session, now_ms)
            }
            None => false,
        };
        if live {
            restored += 1;
        } else if let Err(err) = store.delete_session(&key) {
            tracing::warn!(%err, "cannot forget an ended console session");
        }
    }
    if restored > 0 {
        tracing::info!(sessions = restored, "console sessions restored");
    }
}

#[derive(Debug)]
pub(crate) struct Identities {
    /// By name: role and argon2 hash.
    users: HashMap<String, (Role, String)>,
    /// By `sha256:` hash of the secret: name and role.
    pub(crate) tokens: HashMap<String, (String, Role)>,
    pub(crate) allowed_origins: Vec<String>,
    /// Sign-in by an authenticating reverse proxy, when configured.
    pub(crate) proxy: Option<proxy_sign_in::ProxySignIn>,
    /// Whether people sign in with an OpenID Connect provider.
    pub(crate) single_sign_on: bool,
    /// Verified when the user name is unknown, so a wrong name takes as long
    /// as a wrong password and does not reveal which names exist.
    decoy_hash: String,
}

impl AccessControl {
    /// Access control as `config` asks for it.
    pub fn new(
        config: &Config,
        controller: ControllerHandle,
        store: std::sync::Arc<SqliteStore>,
        wall_now: canary_shared::UnixMillis,
    ) -> Result<AccessControl, credentials::CredentialError> {
        let session = config
            .auth
            .as_ref()
            .map(|auth| auth.session)
            .unwrap_or_default();
        let millis =
            |duration: std::time::Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let identities = match &config.auth {
            None => None,
            Some(auth) => Some(Identities::from_config(auth)?),
        };
        let mut sessions = Sessions::new(
            millis(session.idle_timeout.0),
            millis(session.absolute_timeout.0),
        );
        restore_sessions(&mut sessions, identities.as_ref(), &store, wall_now.0);
        Ok(AccessControl {
            identities,
            sessions: Mutex::new(sessions),
            throttle: Mutex::new(LoginThrottle::default()),
            verifications: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS)),
            waiting_verifications: std::sync::atomic::AtomicUsize::new(0),
            verifier_memory: Arc::default(),
            denials: Mutex::new(DenialPacer::default()),
            secure_cookie: config.server.tls.is_some(),
            epoch: Instant::now(),
            epoch_wall_ms: wall_now.0,
            saves: spawn_session_writer(store),
            saved_use: Mutex::new(HashMap::new()),
            proxy_seen: Mutex::new(std::collections::HashSet::new()),
            controller,
        })
    }

    /// Saves or forgets a session, off the async threads and in the order
    /// asked (a logout must not be overtaken by the save of its login); a
    /// failure is logged (the session still works until the next restart).
    fn persist(&self, key: String, session: Option<Session>) {
        if session.is_none() {
            lock(&self.saved_use).remove(&key);
        }
        let _ = self.saves.send(SessionSave {
            key,
            session,
            done: None,
        });
    }

    /// Forgets a session in the store and waits until it is forgotten: a
    /// logout or revocation is answered only once a restart cannot bring
    /// the session back.
    async fn forget(&self, key: String) {
        lock(&self.saved_use).remove(&key);
        let (done, forgotten) = tokio::sync::oneshot::channel();
        let sent = self.saves.send(SessionSave {
            key,
            session: None,
            done: Some(done),
        });
        if sent.is_ok() {
            let _ = forgotten.await;
        }
    }

    /// Checks the session behind `secret`, counting this as use, and saves
    /// the use now and then.
    pub(crate) fn use_session(&self, secret: &str) -> Result<Session, SessionRefused> {
        let key = session_key(secret);
        let now = self.now_ms();
        let checked = lock(&self.sessions).check(&key, now);
        match &checked {
            Ok(session) => {
                let due = {
                    let mut saved_use = lock(&self.saved_use);
                    let last = saved_use.entry(key.clone()).or_insert(session.created_ms);
                    let due = now.saturating_sub(*last) >= SAVE_USE_EVERY_MS;
                    if due {
                        *last = now;
                    }
                    due
                };
                if due {
                    self.persist(key, Some(session.clone()));
                }
            }
            // It existed and has ended now: forget it. (An unknown cookie
            // writes nothing: anyone can send one.)
            Err(SessionRefused::Idle | SessionRefused::Expired) => self.persist(key, None),
            Err(SessionRefused::Unknown) => {}
        }
        checked
    }

    /// Whether requests need credentials.
    pub fn enabled(&self) -> bool {
        self.identities.is_some()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch_wall_ms
            .saturating_add(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Whether the console session behind `secret` is still valid (without
    /// counting this as use); WebSocket streams ask once a second.
    pub fn session_alive(&self, secret: &str) -> Result<(), SessionRefused> {
        lock(&self.sessions).peek(&session_key(secret), self.now_ms())
    }

    /// Counts an open console as use of its session.
    pub fn touch_session(&self, secret: &str) {
        let _ = self.use_session(secret);
    }

    /// Records a denied request in the audit trail, at most once a minute per source.
    pub(crate) fn record_denial(&self, source: IpAddr, actor: &str, why: &str) {
        self.record_paced(source, actor, AuditAction::AccessDenied, why);
    }

    /// Records `action` at most once a minute per source, saying how many
    /// more were held back, so a client retrying in a loop cannot flood the
    /// trail.
    fn record_paced(&self, source: IpAddr, actor: &str, action: AuditAction, why: &str) {
        let Some(held_back) = lock(&self.denials).admit(source, self.now_ms()) else {
            return;
        };
        let more = if held_back > 0 {
            format!(" ({held_back} more denied from this address in the last minute)")
        } else {
            String::new()
        };
        self.audit(actor, action, format!("{why}; from {source}{more}"));
    }

    fn audit(&self, actor: &str, action: AuditAction, reason: String) {
        // The actor may be whatever an anonymous client typed as a user name:
        // escaped and bounded, so it can forge no log line or terminal escape.
        let actor = printable(actor, MAX_NAME_CHARS);
        let reason = printable(&reason, 500);
        // Queued without waiting: recording never holds up the request it is about.
        self.controller.access(actor, action, reason);
    }
}

/// Password verifications at once. One takes tens of milliseconds, so a
/// single slot still signs in dozens of people a second, while a flood of
/// attempts can take at most one core from the proxy and 19 MiB of memory.
const CONCURRENT_VERIFICATIONS: usize = 1;
/// Sign-ins that may wait for a verification slot; more get 429 at once.
const MAX_WAITING_VERIFICATIONS: usize = 64;

impl AccessControl {
    /// A slot to verify a password in, waiting for one when all are busy;
    /// `None` when too many sign-ins already wait.
    /// The slot is owned, so it moves into the blocking task: a client that
    /// goes away mid-verification does not free it before argon2 is done.
    async fn verification_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = Arc::clone(&self.verifications).try_acquire_owned() {
            return Some(permit);
        }
        let waiting = self.waiting_verifications.fetch_add(1, Ordering::AcqRel);
        let permit = if waiting < MAX_WAITING_VERIFICATIONS {
            Arc::clone(&self.verifications).acquire_owned().await.ok()
        } else {
            None
        };
        self.waiting_verifications.fetch_sub(1, Ordering::AcqRel);
        permit
    }
}

impl Identities {
    fn from_config(auth: &AuthConfig) -> Result<Identities, credentials::CredentialError> {
        Ok(Identities {
            users: auth
                .users
                .iter()
                .map(|user| {
                    (
                        user.name.0.clone(),
                        (user.role, user.password_hash.0.clone()),
                    )
                })
                .collect(),
            tokens: auth
                .tokens
                .iter()
                .map(|token| {
                    (
                        token.secret_hash.0.clone(),
                        (token.name.0.clone(), token.role),
                    )
                })
                .collect(),
            allowed_origins: auth
                .allowed_origins
                .iter()
                .map(|origin| origin.0.clone())
                .collect(),
            proxy: auth
                .proxy
                .as_ref()
                .map(proxy_sign_in::ProxySignIn::from_config),
            single_sign_on: auth.oidc.is_some(),
            decoy_hash: credentials::hash_password("decoy password for unknown user names")?,
        })
    }

    pub(crate) fn token(&self, secret: &str) -> Option<(String, Role)> {
        let hash = credentials::token_hash(secret);
        // Every stored hash is compared in full, so the time taken does not
        // depend on how much of a stored hash a guess matches.
        self.tokens
            .iter()
            .find(|(stored, _)| credentials::constant_time_eq(stored, &hash))
            .map(|(_, identity)| identity.clone())
    }
}

/// Locks `mutex`, recovering the data if a panic poisoned it (the data are
/// plain maps, valid after any partial update).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// === Signing in and out ===

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Logins are off (no `auth` section).
    #[error("logins are off on this server (no auth section in its config)")]
    Disabled,
    /// The name or address is locked out, or too many sign-ins wait for a
    /// password check; try again after this many seconds.
    #[error("too many sign-in attempts; try again in {retry_after_s} s")]
    TooManyAttempts {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// One answer for an unknown name and a wrong password alike.
    #[error("wrong user name or password")]
    WrongCredentials,
    /// Signed in at the identity provider, but none of the person's groups
    /// gives a role here.
    #[error(
        "none of your groups gives a role in canary; ask an admin to map one in auth.oidc.roles"
    )]
    NoRole,
    /// The server could not check or make the secret.
    #[error("{0}")]
    Internal(String),
}

/// A new console session.
#[derive(Debug)]
pub struct SignedIn {
    /// The cookie's secret (the session is kept under its SHA-256).
    pub secret: String,
    /// Who signed in, with which role.
    pub user: String,
    /// Their role, from the config.
    pub role: Role,
}

impl AccessControl {
    /// Signs `user` in from `source` with `password`, ending the session
    /// behind `previous_secret` (a new id at every sign-in, so a cookie
    /// planted before it is worth nothing).
    ///
    /// The attempt is counted as a failure before the password is checked
    /// and taken back on success, so concurrent guesses cannot all pass a
    /// check made before any of them is recorded; one check runs at a time,
    /// in reused memory.
    pub async fn sign_in(
        &self,
        source: IpAddr,
        user: String,
        password: String,
        previous_secret: Option<&str>,
    ) -> Result<SignedIn, SignInError> {
        let Some(identities) = &self.identities else {
            return Err(SignInError::Disabled);
        };
        if let Err(wait_ms) = lock(&self.throttle).begin(source, &user, self.now_ms()) {
            return Err(SignInError::TooManyAttempts {
                retry_after_s: wait_ms.div_ceil(1000),
            });
        }
        let (role, hash, known) = match identities.users.get(&user) {
            Some((role, hash)) => (*role, hash.clone(), true),
            None => (Role::Viewer, identities.decoy_hash.clone(), false),
        };
        let Some(verification) = self.verification_slot().await else {
            return Err(SignInError::TooManyAttempts { retry_after_s: 1 });
        };
        // argon2 takes tens of milliseconds on purpose: off the async threads.
        let matches = tokio::task::spawn_blocking({
            let memories = Arc::clone(&self.verifier_memory);
            move || {
                // At most one memory per slot: the slot is held throughout.
                let mut memory = lock(&memories).pop().unwrap_or_default();
                let matches = credentials::verify_password(&hash, &password, &mut memory);
                lock(&memories).push(memory);
                drop(verification);
                matches
            }
        })
        .await
        .map_err(|err| SignInError::Internal(err.to_string()))?;
        if !(matches && known) {
            self.audit(
                &user,
                AuditAction::LoginFailed,
                format!("wrong user name or password; from {source}"),
            );
            return Err(SignInError::WrongCredentials);
        }
        lock(&self.throttle).succeeded(source, &user);
        let signed_in = self.open_session(user, role, false, previous_secret)?;
        self.audit(
            &signed_in.user,
            AuditAction::Login,
            format!("signed in from {source}"),
        );
        Ok(signed_in)
    }

    /// A new session for `user` with `role`, ending the one behind
    /// `previous_secret`.
    fn open_session(
        &self,
        user: String,
        role: Role,
        single_sign_on: bool,
        previous_secret: Option<&str>,
    ) -> Result<SignedIn, SignInError> {
        let (secret, handle) =
            credentials::new_session().map_err(|err| SignInError::Internal(err.to_string()))?;
        let key = session_key(&secret);
        let created = {
            let mut sessions = lock(&self.sessions);
            if let Some(previous) = previous_secret {
                let previous = session_key(previous);
                if sessions.end(&previous).is_some() {
                    self.persist(previous, None);
                }
            }
            let now = self.now_ms();
            sessions.create_for(key.clone(), handle, &user, role, single_sign_on, now);
            sessions.check(&key, now).ok()
        };
        self.persist(key, created);
        Ok(SignedIn { secret, user, role })
    }

    /// Someone the identity provider vouched for: a session like a
    /// password's, with the role their `groups` give; refused (and
    /// audited, with their groups) when no group maps and unmapped people
    /// are refused.
    pub(crate) fn single_sign_on(
        &self,
        rules: &crate::domain::access::GroupRoles,
        user: String,
        groups: &[String],
        source: IpAddr,
        previous_secret: Option<&str>,
    ) -> Result<SignedIn, SignInError> {
        let listed = if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(", ")
        };
        let Some(role) = rules.role_for(groups.iter().map(String::as_str)) else {
            self.audit(
                &user,
                AuditAction::AccessDenied,
                format!(
                    "signed in at the identity provider from {source}, but no group of theirs \
                     maps to a role (groups: {listed})"
                ),
            );
            return Err(SignInError::NoRole);
        };
        let signed_in = self.open_session(user, role, true, previous_secret)?;
        self.audit(
            &signed_in.user,
            AuditAction::Login,
            format!("signed in with single sign-on from {source} as {role} (groups: {listed})"),
        );
        Ok(signed_in)
    }

    /// A sign-in with the identity provider that failed, for the trail:
    /// paced like denials, since anyone can send the callback a forged
    /// answer in a loop (each is logged).
    pub(crate) fn single_sign_on_failed(&self, source: IpAddr, why: &str) {
        self.record_paced(
            source,
            "unknown",
            AuditAction::LoginFailed,
            &format!("single sign-on refused: {why}"),
        );
    }

    /// Ends the session behind `secret`, if it is live, once the store has
    /// forgotten it (a restart cannot bring it back).
    pub async fn sign_out(&self, secret: &str) {
        let key = session_key(secret);
        let ended = lock(&self.sessions).end(&key);
        if let Some(session) = ended {
            self.forget(key).await;
            self.audit(&session.user, AuditAction::Logout, "signed out".to_owned());
        }
    }

    /// Every live session, with the time now (for ages).
    pub fn live_sessions(&self) -> (Vec<Session>, u64) {
        let now = self.now_ms();
        (lock(&self.sessions).list(now), now)
    }

    /// Ends the session with `handle` on `admin`'s word; `false` when there
    /// is none.
    pub async fn revoke(&self, admin: &str, handle: &str) -> bool {
        let revoked = lock(&self.sessions).revoke(handle);
        let Some((key, session)) = revoked else {
            return false;
        };
        self.forget(key).await;
        self.audit(
            admin,
            AuditAction::SessionRevoked,
            format!("ended {}'s session {handle}", session.user),
        );
        true
    }

    /// Someone the authenticating proxy signed in: recorded as a `login` the
    /// first time this server sees them with this role (every request
    /// carries the headers; a login per request would drown the trail).
    pub(crate) fn proxy_signed_in(&self, name: &str, role: Role, groups: &str, source: IpAddr) {
        let first = lock(&self.proxy_seen).insert((name.to_owned(), role));
        if first {
            self.audit(
                name,
                AuditAction::Login,
                format!(
                    "signed in through the authenticating proxy at {source} as {role} (groups: {groups})"
                ),
            );
        }
    }

    /// Whether the config could still sign `user` in: a configured user or
    /// token of that name; anyone while single sign-on or an authenticating
    /// proxy signs people in (their names are not known in advance); and
    /// everyone while logins are off.
    pub fn may_sign_in(&self, user: &str) -> bool {
        let Some(identities) = &self.identities else {
            return true;
        };
        identities.single_sign_on
            || identities.proxy.is_some()
            || identities.users.contains_key(user)
            || identities.tokens.values().any(|(name, _)| name == user)
    }

    /// Whether the console should mark its cookie `Secure` (it is served over TLS).
    pub fn secure_cookie(&self) -> bool {
        self.secure_cookie
    }
}
