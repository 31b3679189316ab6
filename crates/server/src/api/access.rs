//! Who may do what: identities from sessions and tokens, the role each route
//! needs, cross-site protection, login and logout.
//!
//! One middleware ([`authorize`]) runs before every handler. It resolves the
//! request's identity (a bearer token, a session cookie, or the local
//! operator when logins are off), looks up the role the matched route needs
//! in [`route_access`] (a route missing from that table is unreachable), and
//! refuses writes and WebSocket handshakes that a page of another site could
//! have caused. Handlers read the [`Identity`] from the request's extensions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use canary_shared::api::command_paths;
use canary_shared::auth::{LOGIN_PATH, LOGOUT_PATH, ME_PATH, SESSION_COOKIE};
use canary_shared::{AuditAction, CredentialKind, LoginRequest, Me, Role};
use serde::Serialize;
use tokio::time::Instant;

use crate::adapters::credentials;
use crate::adapters::store::SqliteStore;
use crate::api::{ApiError, AppState};
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
fn session_key(secret: &str) -> String {
    credentials::token_hash(secret)
}

/// The actor recorded when logins are off and the server is on loopback.
pub const LOCAL_ACTOR: &str = "local";

/// Who a request comes from, as [`authorize`] established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User or token name; the actor in the audit trail.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How it proved itself.
    pub kind: CredentialKind,
    /// The session's cookie secret, for a console session (so a WebSocket
    /// can notice when the session ends).
    pub session: Option<String>,
}

impl Identity {
    fn me(&self, auth_enabled: bool) -> Me {
        Me {
            name: self.name.clone(),
            role: self.role,
            kind: self.kind,
            auth_enabled,
        }
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteAccess {
    /// Anyone: the console's files, login and logout.
    Public,
    /// An identity with at least this role.
    Needs(Role),
}

/// The access each route needs, by method and route template. Every route
/// of the router must be here: a route that is not is unreachable (deny by
/// default), and the auth-matrix test walks this table.
pub const ROUTES: &[(Method, &str, RouteAccess)] = {
    use Role::{Admin, Operator, Viewer};
    use RouteAccess::{Needs, Public};
    &[
        (Method::GET, "/", Public),
        (Method::GET, "/admin/canary", Public),
        (Method::GET, "/admin/canary/", Public),
        (Method::GET, "/admin/canary/{*path}", Public),
        (Method::POST, LOGIN_PATH, Public),
        (Method::POST, LOGOUT_PATH, Public),
        (Method::GET, ME_PATH, Needs(Viewer)),
        (Method::GET, "/admin/canary/status", Needs(Viewer)),
        (Method::GET, "/admin/canary/metrics", Needs(Viewer)),
        (Method::GET, "/admin/canary/metrics/history", Needs(Viewer)),
        (Method::GET, "/admin/canary/audit", Needs(Viewer)),
        (Method::GET, "/admin/canary/openapi.yaml", Needs(Viewer)),
        (Method::GET, "/admin/canary/ws", Needs(Viewer)),
        (Method::POST, command_paths::START, Needs(Operator)),
        (Method::POST, command_paths::SCALE, Needs(Operator)),
        (Method::POST, "/admin/canary/scale/", Needs(Operator)),
        (
            Method::POST,
            "/admin/canary/scale/{percent}",
            Needs(Operator),
        ),
        (Method::POST, command_paths::CONTINUE, Needs(Operator)),
        (Method::POST, command_paths::PAUSE, Needs(Operator)),
        (
            Method::POST,
            command_paths::AUTO_PROGRESSION,
            Needs(Operator),
        ),
        (Method::POST, command_paths::RESUME, Needs(Operator)),
        (Method::POST, command_paths::PROMOTE, Needs(Operator)),
        (Method::POST, command_paths::ROLLBACK, Needs(Operator)),
        (Method::POST, command_paths::STOP, Needs(Operator)),
        (
            Method::POST,
            "/admin/canary/webhook/{event}",
            Needs(Operator),
        ),
        (Method::GET, "/admin/canary/config", Needs(Admin)),
        (Method::GET, "/admin/canary/settings", Needs(Viewer)),
        (Method::GET, "/metrics", Needs(Viewer)),
        (
            Method::POST,
            "/admin/canary/metrics/custom",
            Needs(Operator),
        ),
        (Method::GET, "/admin/canary/demo", Needs(Viewer)),
        (Method::POST, "/admin/canary/demo", Needs(Operator)),
        (Method::GET, "/admin/canary/sessions", Needs(Admin)),
        (
            Method::DELETE,
            "/admin/canary/sessions/{handle}",
            Needs(Admin),
        ),
    ]
};

/// The access `route` needs for `method`; `None` when the route is not declared.
pub fn route_access(method: &Method, route: &str) -> Option<RouteAccess> {
    // HEAD is answered by GET routes.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    ROUTES
        .iter()
        .find(|(route_method, template, _)| route_method == method && *template == route)
        .map(|(_, _, access)| *access)
}

// === The access-control state ===

/// The configured identities, sessions, the login throttle and the pacing
/// of denial records; one per server, shared by all requests.
#[derive(Debug)]
pub struct AccessControl {
    /// `None` when logins are off (loopback only).
    identities: Option<Identities>,
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
struct Identities {
    /// By name: role and argon2 hash.
    users: HashMap<String, (Role, String)>,
    /// By `sha256:` hash of the secret: name and role.
    tokens: HashMap<String, (String, Role)>,
    allowed_origins: Vec<String>,
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
    fn use_session(&self, secret: &str) -> Result<Session, SessionRefused> {
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

    fn now_ms(&self) -> u64 {
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
    fn record_denial(&self, source: IpAddr, actor: &str, why: &str) {
        let Some(held_back) = lock(&self.denials).admit(source, self.now_ms()) else {
            return;
        };
        let more = if held_back > 0 {
            format!(" ({held_back} more denied from this address in the last minute)")
        } else {
            String::new()
        };
        self.audit(
            actor,
            AuditAction::AccessDenied,
            format!("{why}; from {source}{more}"),
        );
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
            decoy_hash: credentials::hash_password("decoy password for unknown user names")?,
        })
    }

    fn token(&self, secret: &str) -> Option<(String, Role)> {
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
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// === The middleware ===

/// The client's address; loopback when the connection info is missing
/// (requests built in tests without a socket).
fn source_of(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip())
}

/// The value of the session cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    crate::cookies::value(headers, SESSION_COOKIE)
}

/// Credentials the request carries.
enum Presented<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return match value.to_str().ok().and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        }) {
            Some(token) if !token.trim().is_empty() => Presented::Bearer(token.trim()),
            _ => Presented::Malformed,
        };
    }
    match session_cookie(headers) {
        Some(secret) => Presented::Cookie(secret),
        None => Presented::None,
    }
}

/// Query parameters that look like credentials; refused, because URLs end
/// up in logs, browser history and `Referer` headers.
fn token_in_query(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        matches!(
            name.to_ascii_lowercase().as_str(),
            "token" | "access_token" | "api_key" | "apikey" | "bearer" | "auth"
        )
    })
}

/// Whether `host` (a `Host` header) names this machine's loopback interface.
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]:8000` or `127.0.0.1:8000`; a bare `::1` has more colons.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a browser request may have been caused by another site's page, if it
/// may: `Sec-Fetch-Site` says cross-site, the `Origin` is neither this
/// server nor allowed, or a cookie came without an `Origin` at all.
fn cross_site(
    headers: &HeaderMap,
    allowed_origins: &[String],
    tls: bool,
    has_cookie: bool,
) -> Option<String> {
    if let Some(site) = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        && matches!(site, "cross-site" | "same-site")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Scripts send no Origin; browsers always do on writes and WebSockets.
        return has_cookie.then(|| "a session cookie came without an Origin header".to_owned());
    };
    let origin = origin.to_str().unwrap_or("<not text>");
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let own_origin = format!("{}://{host}", if tls { "https" } else { "http" });
    // Exact comparison only: no wildcards, no prefix or suffix matching.
    let allowed = (!host.is_empty() && origin == own_origin)
        || allowed_origins.iter().any(|allowed| allowed == origin);
    (!allowed).then(|| format!("Origin {origin} is not this server ({own_origin}) or allowed"))
}

/// Refuses what the caller may not do, and hands the handlers an [`Identity`].
pub async fn authorize(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let access = &app.access;
    let source = source_of(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = request.method().clone();
    let headers = request.headers();

    if request.uri().query().is_some_and(token_in_query) {
        return ApiError::InvalidField {
            field: "query",
            message: "credentials are not accepted in the URL; send them as \
                      Authorization: Bearer <token>"
                .to_owned(),
        }
        .into_response();
    }
    let is_write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let is_upgrade = headers.contains_key(header::UPGRADE);

    // Unknown paths fall through to the JSON 404; a known route that the
    // table does not declare is unreachable.
    let needed = match &route {
        None => return next.run(request).await,
        Some(route) => match route_access(&method, route) {
            Some(needed) => needed,
            None => {
                tracing::error!(%method, %route, "route has no declared access; refused");
                return ApiError::NotFound {
                    path: request.uri().path().to_owned(),
                }
                .into_response();
            }
        },
    };

    let Some(identities) = &access.identities else {
        // Logins are off, which the server allows on loopback only. A page
        // on another site could still reach loopback through DNS rebinding;
        // it cannot choose the Host header, so only loopback names pass.
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !host.is_empty() && !loopback_host(host) {
            return ApiError::Forbidden(format!(
                "Host {host} is not a loopback name; without logins canary answers only on \
                 127.0.0.1, [::1] or localhost"
            ))
            .into_response();
        }
        if (is_write || is_upgrade)
            && let Some(why) = cross_site(headers, &[], false, false)
        {
            tracing::warn!(%method, path = %request.uri().path(), %why, "cross-site request refused");
            return ApiError::CrossSite(why).into_response();
        }
        request.extensions_mut().insert(Identity {
            name: LOCAL_ACTOR.to_owned(),
            role: Role::Admin,
            kind: CredentialKind::Local,
            session: None,
        });
        return next.run(request).await;
    };

    let identity = match presented(headers) {
        Presented::None => None,
        Presented::Malformed => {
            access.record_denial(source, "unknown", "malformed Authorization header");
            return ApiError::Unauthorized(
                "the Authorization header must be \"Bearer <token>\"".to_owned(),
            )
            .into_response();
        }
        Presented::Bearer(secret) => match identities.token(secret) {
            Some((name, role)) => Some(Identity {
                name,
                role,
                kind: CredentialKind::Token,
                session: None,
            }),
            None => {
                access.record_denial(source, "unknown", "unknown API token");
                return ApiError::Unauthorized("the API token is not valid".to_owned())
                    .into_response();
            }
        },
        Presented::Cookie(secret) => {
            match access.use_session(secret) {
                Ok(session) => Some(Identity {
                    name: session.user,
                    role: session.role,
                    kind: CredentialKind::Session,
                    session: Some(secret.to_owned()),
                }),
                // A stale cookie on a public route (the login page) is no error.
                Err(_) if needed == RouteAccess::Public => None,
                Err(refused) => {
                    return ApiError::Unauthorized(refused.to_string()).into_response();
                }
            }
        }
    };

    // Browsers attach cookies to requests other sites' pages make; tokens
    // they never attach by themselves.
    let by_token = identity
        .as_ref()
        .is_some_and(|identity| identity.kind == CredentialKind::Token);
    if (is_write || is_upgrade)
        && !by_token
        && let Some(why) = cross_site(
            headers,
            &identities.allowed_origins,
            access.secure_cookie,
            session_cookie(headers).is_some(),
        )
    {
        let actor = identity
            .as_ref()
            .map_or("unknown", |identity| &identity.name);
        tracing::warn!(%method, path = %request.uri().path(), %why, "cross-site request refused");
        access.record_denial(source, actor, &format!("cross-site request refused: {why}"));
        return ApiError::CrossSite(why).into_response();
    }

    match (needed, &identity) {
        (RouteAccess::Public, _) => {}
        (RouteAccess::Needs(_), None) => {
            return ApiError::Unauthorized(
                "sign in, or send an API token as Authorization: Bearer <token>".to_owned(),
            )
            .into_response();
        }
        (RouteAccess::Needs(role), Some(identity)) if !identity.role.allows(role) => {
            let why = format!(
                "{} {} needs the {role} role; {} has the {} role",
                method,
                request.uri().path(),
                identity.name,
                identity.role
            );
            access.record_denial(source, &identity.name, &why);
            return ApiError::Forbidden(why).into_response();
        }
        (RouteAccess::Needs(_), Some(_)) => {}
    }
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    next.run(request).await
}

// === Login, logout, who am I, sessions ===

/// `POST /admin/canary/login` with `{"user": …, "password": …}`.
pub(crate) async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let access = &app.access;
    let Some(identities) = &access.identities else {
        return Err(ApiError::Conflict {
            code: "auth_disabled",
            message: "logins are off on this server (no auth section in its config)".to_owned(),
        });
    };
    let body = body.map_err(ApiError::from)?;
    let request: LoginRequest = crate::api::commands::json_body(&headers, &body)?;
    let source = peer.ip();
    // Counted as a failure before it is verified (and taken back on
    // success): concurrent guesses cannot all pass a check made before any
    // of them is recorded.
    if let Err(wait_ms) = lock(&access.throttle).begin(source, &request.user, access.now_ms()) {
        let wait_s = wait_ms.div_ceil(1000);
        return Ok(ApiError::TooManyAttempts {
            retry_after_s: wait_s,
        }
        .into_response());
    }
    let (role, hash, known) = match identities.users.get(&request.user) {
        Some((role, hash)) => (*role, hash.clone(), true),
        None => (Role::Viewer, identities.decoy_hash.clone(), false),
    };
    let Some(verification) = access.verification_slot().await else {
        return Ok(ApiError::TooManyAttempts { retry_after_s: 1 }.into_response());
    };
    let password = request.password;
    // argon2 takes tens of milliseconds on purpose: off the async threads.
    let matches = tokio::task::spawn_blocking({
        let memories = Arc::clone(&access.verifier_memory);
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
    .map_err(|err| ApiError::Internal(err.to_string()))?;
    if !(matches && known) {
        access.audit(
            &request.user,
            AuditAction::LoginFailed,
            format!("wrong user name or password; from {source}"),
        );
        // One message for an unknown name and a wrong password alike.
        return Err(ApiError::Unauthorized(
            "wrong user name or password".to_owned(),
        ));
    }
    lock(&access.throttle).succeeded(source, &request.user);
    let (secret, handle) =
        credentials::new_session().map_err(|err| ApiError::Internal(err.to_string()))?;
    {
        let key = session_key(&secret);
        let mut sessions = lock(&access.sessions);
        // A new id at every login: a cookie planted before it is worth nothing.
        if let Some(previous) = session_cookie(&headers) {
            let previous = session_key(previous);
            if sessions.end(&previous).is_some() {
                access.persist(previous, None);
            }
        }
        let now = access.now_ms();
        sessions.create(key.clone(), handle, &request.user, role, now);
        let created = sessions.check(&key, now).ok();
        drop(sessions);
        access.persist(key, created);
    }
    access.audit(
        &request.user,
        AuditAction::Login,
        format!("signed in from {source}"),
    );
    let me = Me {
        name: request.user,
        role,
        kind: CredentialKind::Session,
        auth_enabled: true,
    };
    let cookie = session_cookie_header(&secret, access.secure_cookie, None);
    Ok(([(header::SET_COOKIE, cookie)], Json(me)).into_response())
}

/// `Set-Cookie` for the session: not readable by scripts, never sent by
/// other sites' requests, and only over TLS when the console uses it.
fn session_cookie_header(secret: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut cookie =
        format!("{SESSION_COOKIE}={secret}; Path=/admin/canary; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(max_age) = max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    HeaderValue::from_str(&cookie).expect("session secrets are URL-safe base64")
}

/// `POST /admin/canary/logout`: ends the cookie's session and clears the cookie.
pub(crate) async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let access = &app.access;
    if let Some(secret) = session_cookie(&headers) {
        let key = session_key(secret);
        let ended = lock(&access.sessions).end(&key);
        if let Some(session) = ended {
            access.forget(key).await;
            access.audit(&session.user, AuditAction::Logout, "signed out".to_owned());
        }
    }
    let clear = session_cookie_header("", access.secure_cookie, Some(0));
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response()
}

/// `GET /admin/canary/me`: who the credentials belong to.
pub(crate) async fn me(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
) -> Json<Me> {
    Json(identity.me(app.access.enabled()))
}

/// One live session, as an admin sees it.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    handle: String,
    user: String,
    role: Role,
    /// Seconds since the login.
    age_s: u64,
    /// Seconds since the session was last used.
    idle_s: u64,
}

/// `GET /admin/canary/sessions`: every live console session.
pub(crate) async fn sessions(State(app): State<AppState>) -> Json<Vec<SessionView>> {
    let access = &app.access;
    let now = access.now_ms();
    let sessions = lock(&access.sessions).list(now);
    Json(
        sessions
            .into_iter()
            .map(|session| SessionView {
                handle: session.handle,
                user: session.user,
                role: session.role,
                age_s: now.saturating_sub(session.created_ms) / 1000,
                idle_s: now.saturating_sub(session.last_seen_ms) / 1000,
            })
            .collect(),
    )
}

/// `DELETE /admin/canary/sessions/{handle}`: ends a session at once; its
/// open console streams close within a second.
pub(crate) async fn revoke(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
    Path(handle): Path<String>,
) -> Result<StatusCode, ApiError> {
    let access = &app.access;
    let revoked = lock(&access.sessions).revoke(&handle);
    match revoked {
        Some((key, session)) => {
            access.forget(key).await;
            access.audit(
                &identity.name,
                AuditAction::SessionRevoked,
                format!("ended {}'s session {handle}", session.user),
            );
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::NotFound {
            path: format!("/admin/canary/sessions/{handle}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, Method};

    use crate::api::access::{ROUTES, cross_site, loopback_host, route_access, token_in_query};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_this_servers_pages_allowed_origins_and_scripts_pass() {
        let allowed = vec!["https://console.example.com".to_owned()];
        let check = |pairs: &[(&'static str, &str)], cookie: bool| {
            cross_site(&headers(pairs), &allowed, false, cookie)
        };
        assert_eq!(check(&[], false), None, "a script sends no Origin");
        assert_eq!(
            check(
                &[
                    ("host", "127.0.0.1:8000"),
                    ("origin", "http://127.0.0.1:8000")
                ],
                true
            ),
            None
        );
        assert_eq!(
            check(
                &[
                    ("host", "10.0.0.5:8000"),
                    ("origin", "https://console.example.com")
                ],
                true
            ),
            None
        );
        for refused in [
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://evil.example"),
            ][..],
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:8000.evil.example"),
            ],
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:80001"),
            ],
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "https://127.0.0.1:8000"),
            ],
            &[("host", "127.0.0.1:8000"), ("origin", "null")],
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "https://console.example.com.evil.example"),
            ],
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "https://example.com"),
            ],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site")],
        ] {
            assert!(check(refused, false).is_some(), "{refused:?} passed");
        }
        assert!(
            check(&[("host", "127.0.0.1:8000")], true).is_some(),
            "a cookie without an Origin is refused"
        );
    }

    #[test]
    fn only_loopback_names_count_as_loopback() {
        for host in [
            "127.0.0.1:8000",
            "localhost:8000",
            "[::1]:8000",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8000",
            "10.0.0.1:8000",
            "localhost.evil.example",
            "[::2]:1",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn credentials_in_the_query_string_are_spotted() {
        assert!(token_in_query("access_token=abc"));
        assert!(token_in_query("limit=5&token=abc"));
        assert!(!token_in_query("limit=5&before=10"));
    }

    #[test]
    fn every_declared_route_has_one_entry_and_head_follows_get() {
        for (index, (method, route, _)) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[index + 1..]
                    .iter()
                    .all(|(other_method, other_route, _)| (other_method, other_route)
                        != (method, route)),
                "{method} {route} is declared twice"
            );
        }
        assert_eq!(
            route_access(&Method::HEAD, "/admin/canary/status"),
            route_access(&Method::GET, "/admin/canary/status")
        );
        assert_eq!(route_access(&Method::PUT, "/admin/canary/status"), None);
    }
}
