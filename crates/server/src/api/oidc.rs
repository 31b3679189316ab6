//! Single sign-on routes: how people may sign in (for the sign-in page),
//! the start of a sign-in at the identity provider, its callback, and the
//! way on to the provider's sign-out. Each answers a browser navigation,
//! so every outcome is a redirect: to the provider, or back to the console
//! (with `?sign_in_error=…` when a sign-in failed, which the sign-in page
//! shows; passwords keep working beside it).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canary_shared::api::BASE_PATH;
use canary_shared::auth::{LoginOptions, OIDC_CALLBACK_PATH, OIDC_STATE_COOKIE};

use crate::access::SignInError;
use crate::adapters::oidc::{OidcError, PENDING_FOR};
use crate::api::AppState;

/// `GET /admin/canary/login`: how people may sign in here.
pub(crate) async fn login_options(State(app): State<AppState>) -> Json<LoginOptions> {
    let auth = app.config.auth.as_ref();
    Json(LoginOptions {
        single_sign_on: app.oidc.as_ref().map(|oidc| oidc.label().to_owned()),
        passwords: auth.is_some_and(|auth| !auth.users.is_empty()),
    })
}

/// The console's own address on this server.
fn console(app: &AppState) -> String {
    format!("{}{BASE_PATH}/", app.config.server.prefix())
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Back to the console's sign-in page, which shows `why`.
fn back_with_error(app: &AppState, why: &str) -> Response {
    let query = serde_urlencoded::to_string([("sign_in_error", why)]).unwrap_or_default();
    let mut response = see_other(&format!("{}?{query}", console(app)));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state_cookie(app, "", 0));
    response
}

/// The login-state cookie: only for the callback's path, gone after
/// [`PENDING_FOR`], and `SameSite=Lax` so the provider's redirect (a
/// top-level navigation from its site) brings it back.
fn state_cookie(app: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let mut cookie = format!(
        "{OIDC_STATE_COOKIE}={value}; Path={}{}; HttpOnly; SameSite=Lax; Max-Age={max_age}",
        app.config.server.prefix(),
        OIDC_CALLBACK_PATH
    );
    if app.access.secure_cookie() {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("sealed login states are URL-safe base64")
}

fn unavailable(app: &AppState, err: &OidcError) -> Response {
    tracing::warn!(%err, "single sign-on unavailable");
    back_with_error(
        app,
        "Single sign-on is not available now: the identity provider cannot be reached (the \
         server's log says why). Sign in with a password, or try again later.",
    )
}

/// `GET /admin/canary/auth/oidc/start`: on to the identity provider.
pub(crate) async fn start(State(app): State<AppState>) -> Response {
    let Some(oidc) = app.oidc.clone() else {
        return back_with_error(&app, "Single sign-on is not set up on this server.");
    };
    match oidc.begin().await {
        Ok(begun) => {
            let mut response = see_other(&begun.url);
            response.headers_mut().insert(
                header::SET_COOKIE,
                state_cookie(&app, &begun.cookie, PENDING_FOR.as_secs()),
            );
            response
        }
        Err(err) => unavailable(&app, &err),
    }
}

/// What the identity provider sends back.
#[derive(Debug, Default, serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /admin/canary/auth/oidc/callback`: the provider's answer; a
/// session on success.
pub(crate) async fn callback(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(oidc) = app.oidc.clone() else {
        return back_with_error(&app, "Single sign-on is not set up on this server.");
    };
    let answer: Callback =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let (code, state) = match (answer.code, answer.state) {
        (Some(code), Some(state)) if answer.error.is_none() => (code, state),
        _ => {
            let why = match (answer.error, answer.error_description) {
                (Some(error), Some(description)) => format!("{error}: {description}"),
                (Some(error), None) => error,
                _ => "the answer has no code and state".to_owned(),
            };
            tracing::warn!(%why, source = %peer.ip(), "single sign-on refused");
            app.access.single_sign_on_failed(peer.ip(), &why);
            return back_with_error(
                &app,
                &format!("The identity provider did not sign you in: {why}."),
            );
        }
    };
    let login_state = crate::cookies::value(&headers, OIDC_STATE_COOKIE);
    let person = match oidc.finish(login_state, &code, &state).await {
        Ok(person) => person,
        Err(err @ OidcError::Unavailable(_)) => return unavailable(&app, &err),
        Err(OidcError::Refused(why)) => {
            tracing::warn!(%why, source = %peer.ip(), "single sign-on refused");
            app.access.single_sign_on_failed(peer.ip(), &why);
            return back_with_error(&app, &format!("Single sign-on failed: {why}."));
        }
    };
    let signed_in = app.access.single_sign_on(
        &oidc.group_roles(),
        person.name,
        &person.groups,
        peer.ip(),
        crate::cookies::value(&headers, canary_shared::auth::SESSION_COOKIE),
    );
    match signed_in {
        Ok(signed_in) => {
            let mut response = see_other(&console(&app));
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                crate::api::access::session_cookie_header(
                    &signed_in.secret,
                    app.access.secure_cookie(),
                    None,
                    app.config.server.prefix(),
                ),
            );
            headers.append(header::SET_COOKIE, state_cookie(&app, "", 0));
            response
        }
        Err(err @ SignInError::NoRole) => back_with_error(&app, &format!("Signed in, but {err}.")),
        Err(err) => back_with_error(&app, &err.to_string()),
    }
}

/// `GET /admin/canary/auth/oidc/signed-out`: after the console's session
/// ended, on to the identity provider's sign-out (which comes back to the
/// console), or to the console when the provider has none.
pub(crate) async fn signed_out(State(app): State<AppState>) -> Response {
    let Some((oidc, auth)) = app
        .oidc
        .clone()
        .zip(app.config.auth.as_ref().and_then(|auth| auth.oidc.as_ref()))
    else {
        return see_other(&console(&app));
    };
    let after = auth
        .redirect_url
        .0
        .trim_end_matches("auth/oidc/callback")
        .to_owned();
    match oidc.end_session_url(&after).await {
        Some(url) => see_other(&url),
        None => see_other(&console(&app)),
    }
}
