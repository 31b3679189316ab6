//! The HTTP and WebSocket shell: the only module that knows HTTP.
//!
//! Routes live under [`canary_shared::api::BASE_PATH`]: the REST API, the
//! WebSocket stream and the built console with its client-side routes.

pub mod access;
mod assets;
mod body;
pub(crate) mod commands;
mod demo;
mod error;
mod oidc;
mod push;
pub(crate) mod status;
pub mod stream;
mod webhooks;

use std::path::PathBuf;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Redirect;
use axum::routing::{get, post};
use std::sync::Arc;

use canary_shared::api::{
    BASE_PATH, METRICS_PATH, SETTINGS_PATH, STATUS_PATH, STREAM_PATH, command_paths,
};
use canary_shared::auth::{LOGIN_PATH, LOGOUT_PATH, ME_PATH};
use canary_shared::demo::DEMO_PATH;
use canary_shared::{CanaryState, MetricsSnapshot};
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Refuses a millisecond or sequence number the store cannot hold (it keeps
/// them as SQLite's signed 64-bit integers), naming the query parameter,
/// instead of letting it fail in the store as an outage.
pub(crate) fn check_store_millis(parameter: &str, value: Option<u64>) -> Result<(), ApiError> {
    match value {
        Some(value) if i64::try_from(value).is_err() => Err(ApiError::BadQuery(format!(
            "{parameter}: must be at most {}, got {value}",
            i64::MAX
        ))),
        _ => Ok(()),
    }
}

/// A query string read into `T` as axum's `Query` would (the same parser,
/// the same words when it fails), from a raw query that may be absent.
pub(crate) fn parse_query<T: serde::de::DeserializeOwned>(
    raw: Option<&str>,
) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|err| ApiError::BadQuery(format!("Failed to deserialize query string: {err}")))
}

/// A query's `limit` outside `1..=max` is refused, naming the bounds,
/// rather than quietly clamped: the caller asked for something else.
pub(crate) fn check_limit(limit: Option<u32>, max: u32) -> Result<(), ApiError> {
    match limit {
        Some(limit) if !(1..=max).contains(&limit) => Err(ApiError::BadQuery(format!(
            "limit: must be from 1 to {max}, got {limit}"
        ))),
        _ => Ok(()),
    }
}

pub use crate::api::error::ApiError;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The latest rollout state, published by the controller.
    pub state: watch::Receiver<CanaryState>,
    /// The latest measurements, published by the controller once a second.
    pub metrics: watch::Receiver<Arc<MetricsSnapshot>>,
    /// Commands to the controller, and its audit broadcast.
    pub controller: crate::controller::ControllerHandle,
    /// The store, for reading the audit trail.
    pub store: Arc<crate::adapters::store::SqliteStore>,
    /// The configuration in effect.
    pub config: Arc<crate::config::Config>,
    /// Where the built console lives.
    pub assets_dir: PathBuf,
    /// Identities, sessions and the login throttle.
    pub access: Arc<crate::access::AccessControl>,
    /// The proxy's measurements, for `/metrics`.
    pub recorder: Arc<crate::adapters::recorder::Recorder>,
    /// What copies of production's requests to the canary found, when the
    /// config has a shadow step.
    pub shadow: Option<Arc<crate::adapters::shadow::ShadowTap>>,
    /// Wall time, for stamping pushed values.
    pub clock: Arc<dyn crate::ports::Clock>,
    /// Custom metric readings; pushed values land here.
    pub custom: Arc<crate::adapters::metric_sources::CustomReadings>,
    /// Single sign-on's identity provider, when `auth.oidc` is set.
    pub oidc: Option<Arc<crate::adapters::oidc::OidcProvider>>,
    /// Web Push: the VAPID key and the devices alerts go to.
    pub push: Arc<crate::adapters::push::Push>,
    /// The demo's services, when the server runs `canary demo`.
    pub demo: Option<Arc<crate::adapters::demo::DemoControl>>,
    /// What WebSocket streams send, encoded once for all of them.
    pub stream: stream::StreamFeed,
    /// Flips to `true` when the server shuts down. Sender: [`crate::run`];
    /// receivers: WebSocket streams, which then close with "going away".
    pub shutdown: watch::Receiver<bool>,
}

/// The admin router: REST API, WebSocket stream and console, under
/// `server.path_prefix` when one is set.
pub fn router(app_state: AppState) -> Router {
    let prefix = app_state.config.server.prefix().to_owned();
    let home = format!("{prefix}{BASE_PATH}/");
    let routes = routes(app_state, home.clone());
    if prefix.is_empty() {
        return routes;
    }
    Router::new()
        .route("/", get(move || async move { Redirect::temporary(&home) }))
        .nest(&prefix, routes)
        .fallback(error::not_found)
}

/// Every route, at its own path; `home` is where `/` sends a browser.
fn routes(app_state: AppState, home: String) -> Router {
    let frame_options: Option<HeaderValue> = app_state
        .config
        .server
        .frame_ancestors
        .is_empty()
        .then(|| HeaderValue::from_static("DENY"));
    Router::new()
        .route("/", get(move || async move { Redirect::temporary(&home) }))
        .route(STATUS_PATH, get(status::get_status))
        .route("/metrics", get(status::prometheus_metrics))
        .route(METRICS_PATH, get(status::get_metrics))
        .route(
            canary_shared::api::VALIDATION_PATH,
            get(status::get_validation),
        )
        .route(
            &format!("{METRICS_PATH}/custom"),
            post(status::push_custom_metric),
        )
        .route(STREAM_PATH, get(stream::upgrade))
        .route(LOGIN_PATH, post(access::login).get(oidc::login_options))
        .route(canary_shared::auth::OIDC_START_PATH, get(oidc::start))
        .route(canary_shared::auth::OIDC_CALLBACK_PATH, get(oidc::callback))
        .route(canary_shared::auth::OIDC_SIGNED_OUT_PATH, get(oidc::signed_out))
        .route(LOGOUT_PATH, post(access::logout))
        .route(ME_PATH, get(access::me))
        .route(&format!("{BASE_PATH}/sessions"), get(access::sessions))
        .route(
            &format!("{BASE_PATH}/sessions/{{handle}}"),
            axum::routing::delete(access::revoke),
        )
        .route(command_paths::START, post(commands::start))
        .route(
            command_paths::SCALE,
            post(commands::scale_without_percent),
        )
        .route(
            &format!("{}/", command_paths::SCALE),
            post(commands::scale_without_percent),
        )
        .route(
            &format!("{}/{{percent}}", command_paths::SCALE),
            post(commands::scale),
        )
        .route(command_paths::CONTINUE, post(commands::continue_))
        .route(command_paths::PAUSE, post(commands::pause))
        .route(command_paths::RESUME, post(commands::resume))
        .route(command_paths::PROMOTE, post(commands::promote))
        .route(
            command_paths::AUTO_PROGRESSION,
            post(commands::set_auto_progression),
        )
        .route(command_paths::ROLLBACK, post(commands::rollback))
        .route(command_paths::STOP, post(commands::stop))
        .route(
            command_paths::UNDO_PROMOTION,
            post(commands::undo_promotion),
        )
        .route(&format!("{BASE_PATH}/audit"), get(commands::audit))
        .route(canary_shared::push::PUSH_PATH, get(push::overview))
        .route(canary_shared::push::PUSH_DEVICES_PATH, post(push::subscribe))
        .route(
            &format!("{}/{{id}}", canary_shared::push::PUSH_DEVICES_PATH),
            axum::routing::delete(push::remove),
        )
        .route(
            &format!("{}/{{id}}/test", canary_shared::push::PUSH_DEVICES_PATH),
            post(push::test),
        )
        .route(&format!("{BASE_PATH}/config"), get(status::get_config))
        .route(SETTINGS_PATH, get(status::get_settings))
        .route(DEMO_PATH, get(demo::get_demo).post(demo::set_demo))
        .route(
            &format!("{BASE_PATH}/metrics/history"),
            get(status::get_history),
        )
        .route(
            &format!("{BASE_PATH}/openapi.yaml"),
            get(status::get_openapi),
        )
        .route(
            &format!("{BASE_PATH}/webhook/{{event}}"),
            post(webhooks::report),
        )
        .route(BASE_PATH, get(assets::index))
        .route(&format!("{BASE_PATH}/"), get(assets::index))
        // Under the console's path, GET serves files and client routes; any
        // other method is an unknown API path, so 404 rather than 405.
        .route(
            &format!("{BASE_PATH}/{{*path}}"),
            get(assets::asset).fallback(error::not_found),
        )
        .layer(DefaultBodyLimit::max(commands::MAX_COMMAND_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app_state.clone(),
            access::authorize,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // X-Frame-Options cannot name origins: with `server.frame_ancestors`
        // the console's CSP `frame-ancestors` decides alone (browsers that
        // know CSP ignore X-Frame-Options where both are set, so sending
        // DENY beside it would only confuse older ones).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            frame_options,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(
            // Paths only: a query string might carry something secret.
            TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        .with_state(app_state)
}
