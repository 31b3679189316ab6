//! Who may do what: identities from sessions and tokens, the role each route
//! needs, cross-site protection, login and logout.
//!
//! One middleware ([`authorize`]) runs before every handler. It resolves the
//! request's identity (a bearer token, a session cookie, or the local
//! operator when logins are off), looks up the role the matched route needs
//! in [`route_access`] (a route missing from that table is unreachable), and
//! refuses writes and WebSocket handshakes that a page of another site could
//! have caused. Handlers read the [`Identity`] from the request's extensions.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use canary_shared::api::command_paths;
use canary_shared::auth::{
    LOGIN_PATH, LOGOUT_PATH, ME_PATH, OIDC_CALLBACK_PATH, OIDC_SIGNED_OUT_PATH, OIDC_START_PATH,
    SESSION_COOKIE,
};
use canary_shared::{CredentialKind, LoginRequest, Me, Role};
use serde::Serialize;

use crate::access::SignInError;
use crate::access::proxy_sign_in::ProxyIdentity;
use crate::api::body::Body;
use crate::api::{ApiError, AppState};

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
    /// A console session signed in with the identity provider.
    pub single_sign_on: bool,
}

impl Identity {
    fn me(&self, auth_enabled: bool, proxy_sign_out: Option<&str>) -> Me {
        Me {
            name: self.name.clone(),
            role: self.role,
            kind: self.kind,
            auth_enabled,
            sign_out_url: (self.kind == CredentialKind::Proxy)
                .then(|| proxy_sign_out.map(str::to_owned))
                .flatten(),
            panel_url: None,
            panel_label: None,
        }
    }
}

/// `me` with the link back to the team's admin panel, when configured.
fn with_panel(mut me: Me, config: &crate::config::Config) -> Me {
    if let Some(link) = &config.server.panel_link {
        me.panel_url = Some(link.url.0.clone());
        me.panel_label = Some(link.label.0.clone());
    }
    me
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
        (Method::GET, LOGIN_PATH, Public),
        (Method::GET, OIDC_START_PATH, Public),
        (Method::GET, OIDC_CALLBACK_PATH, Public),
        (Method::GET, OIDC_SIGNED_OUT_PATH, Public),
        (Method::POST, LOGOUT_PATH, Public),
        (Method::GET, ME_PATH, Needs(Viewer)),
        (Method::GET, "/admin/canary/status", Needs(Viewer)),
        (Method::GET, "/admin/canary/metrics", Needs(Viewer)),
        (Method::GET, "/admin/canary/metrics/history", Needs(Viewer)),
        (Method::GET, "/admin/canary/validation", Needs(Viewer)),
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
        (Method::POST, command_paths::UNDO_PROMOTION, Needs(Operator)),
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
        (Method::GET, "/admin/canary/push", Needs(Viewer)),
        (Method::POST, "/admin/canary/push/devices", Needs(Viewer)),
        (
            Method::DELETE,
            "/admin/canary/push/devices/{id}",
            Needs(Viewer),
        ),
        (
            Method::POST,
            "/admin/canary/push/devices/{id}/test",
            Needs(Viewer),
        ),
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
    // Under `server.path_prefix` the matched path starts with it; the
    // table names the routes without it.
    let prefix = app.config.server.prefix();
    let route = request.extensions().get::<MatchedPath>().map(|path| {
        let path = path.as_str();
        path.strip_prefix(prefix)
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path)
            .to_owned()
    });
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
            single_sign_on: false,
        });
        return next.run(request).await;
    };

    let identity = match presented(headers) {
        Presented::None => match identities.proxy.as_ref().map(|proxy| {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            proxy.identify(peer, headers)
        }) {
            None | Some(ProxyIdentity::NotFromProxy) => None,
            Some(ProxyIdentity::WrongSecret { claimed }) => {
                access.record_denial(
                    source,
                    &claimed,
                    "the authenticating proxy's secret header is missing or wrong",
                );
                return ApiError::Unauthorized(
                    "the authenticating proxy's secret header is missing or wrong".to_owned(),
                )
                .into_response();
            }
            Some(ProxyIdentity::Refused { name, why }) => {
                access.record_denial(source, &name, &why);
                return ApiError::Forbidden(why).into_response();
            }
            Some(ProxyIdentity::Known { name, role, groups }) => {
                access.proxy_signed_in(&name, role, &groups, source);
                Some(Identity {
                    name,
                    role,
                    kind: CredentialKind::Proxy,
                    session: None,
                    single_sign_on: false,
                })
            }
        },
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
                single_sign_on: false,
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
                    single_sign_on: session.single_sign_on,
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
            access.secure_cookie(),
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
    Body(request): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let access = &app.access;
    if !access.enabled() {
        return Err(SignInError::Disabled.into());
    }
    let signed_in = access
        .sign_in(
            peer.ip(),
            request.user,
            request.password,
            session_cookie(&headers),
        )
        .await?;
    let me = Me {
        name: signed_in.user,
        role: signed_in.role,
        kind: CredentialKind::Session,
        auth_enabled: true,
        sign_out_url: None,
        panel_url: None,
        panel_label: None,
    };
    let me = with_panel(me, &app.config);
    let cookie = session_cookie_header(
        &signed_in.secret,
        access.secure_cookie(),
        None,
        app.config.server.prefix(),
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(me)).into_response())
}

impl From<SignInError> for ApiError {
    fn from(err: SignInError) -> ApiError {
        match err {
            SignInError::Disabled => ApiError::Conflict {
                code: "auth_disabled",
                message: err.to_string(),
            },
            SignInError::TooManyAttempts { retry_after_s } => {
                ApiError::TooManyAttempts { retry_after_s }
            }
            SignInError::WrongCredentials => ApiError::Unauthorized(err.to_string()),
            SignInError::NoRole => ApiError::Forbidden(err.to_string()),
            SignInError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

/// `Set-Cookie` for the session: not readable by scripts, never sent by
/// other sites' requests, only over TLS when the console uses it, and only
/// under the console's path (after `server.path_prefix`, when set).
pub(crate) fn session_cookie_header(
    secret: &str,
    secure: bool,
    max_age: Option<u64>,
    prefix: &str,
) -> HeaderValue {
    let mut cookie =
        format!("{SESSION_COOKIE}={secret}; Path={prefix}/admin/canary; HttpOnly; SameSite=Strict");
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
        access.sign_out(secret).await;
    }
    let clear = session_cookie_header(
        "",
        access.secure_cookie(),
        Some(0),
        app.config.server.prefix(),
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response()
}

/// `GET /admin/canary/me`: who the credentials belong to.
pub(crate) async fn me(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
) -> Json<Me> {
    let sign_out = app
        .access
        .identities
        .as_ref()
        .and_then(|identities| identities.proxy.as_ref())
        .and_then(|proxy| proxy.sign_out_url.as_deref());
    let mut me = identity.me(app.access.enabled(), sign_out);
    if identity.single_sign_on {
        // After the local session ends, the identity provider's own.
        me.sign_out_url = Some(format!(
            "{}{}",
            app.config.server.prefix(),
            canary_shared::auth::OIDC_SIGNED_OUT_PATH
        ));
    }
    Json(with_panel(me, &app.config))
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
    let (sessions, now) = app.access.live_sessions();
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
    if app.access.revoke(&identity.name, &handle).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            path: format!("/admin/canary/sessions/{handle}"),
        })
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
