//! Reads: status, metrics, config and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use canary_shared::{CanaryState, MetricsSnapshot};

use crate::api::AppState;

/// The current [`CanaryState`].
pub(crate) async fn get_status(State(app): State<AppState>) -> Json<CanaryState> {
    Json(app.state.borrow().clone())
}

/// The latest [`MetricsSnapshot`]: both sides' windows and five minutes of seconds.
pub(crate) async fn get_metrics(State(app): State<AppState>) -> Json<MetricsSnapshot> {
    Json(MetricsSnapshot::clone(&app.metrics.borrow()))
}

/// `GET /admin/canary/validation`: what the canary's answers to copied
/// requests came to in the current (or last) shadow step, with the
/// per-second series and the latest mismatched examples.
pub(crate) async fn get_validation(
    State(app): State<AppState>,
) -> Result<Json<canary_shared::ShadowReport>, crate::api::error::ApiError> {
    match &app.shadow {
        Some(tap) => Ok(Json(tap.report(true))),
        None => Err(crate::api::error::ApiError::NotFound {
            path: format!(
                "{} (the config has no validation.shadow)",
                canary_shared::api::VALIDATION_PATH
            ),
        }),
    }
}

/// `GET /admin/canary/config`: the configuration in effect.
pub(crate) async fn get_config(State(app): State<AppState>) -> Json<crate::config::Config> {
    Json(crate::config::Config::clone(&app.config))
}

/// `GET /admin/canary/settings`: the rules rollouts follow, for anyone who may watch.
pub(crate) async fn get_settings(
    State(app): State<AppState>,
) -> Json<canary_shared::RolloutSettings> {
    Json(app.config.rollout_settings())
}

/// The OpenAPI document of this API.
pub(crate) const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /admin/canary/openapi.yaml`: the document as this server behaves.
/// Without logins no operation asks for credentials, so that version of
/// the document declares none (a client generated from it, or a
/// conformance checker, then expects what the server does).
pub(crate) async fn get_openapi(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    let document = if app.access.enabled() {
        std::borrow::Cow::Borrowed(OPENAPI_YAML)
    } else {
        std::borrow::Cow::Owned(openapi_without_logins())
    };
    // Under a path prefix every path of the document starts with it.
    let prefix = app.config.server.prefix();
    let document = if prefix.is_empty() {
        document
    } else {
        std::borrow::Cow::Owned(document.replacen(
            "\npaths:\n",
            &format!("\nservers:\n  - url: {prefix}\npaths:\n"),
            1,
        ))
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        document,
    )
}

/// The top-level requirement the document declares for a server with logins.
const SECURITY_WITH_LOGINS: &str = "security:\n  - bearer: []\n  - session: []\n";

/// [`OPENAPI_YAML`] for a server without logins: no credentials required.
pub(crate) fn openapi_without_logins() -> String {
    debug_assert!(OPENAPI_YAML.contains(SECURITY_WITH_LOGINS));
    OPENAPI_YAML.replacen(
        SECURITY_WITH_LOGINS,
        "# This server has no logins: no operation needs credentials.\nsecurity: []\n",
        1,
    )
}

/// The most samples one history request returns: a day of seconds.
const MAX_HISTORY_SAMPLES: u32 = 86_400;

/// The query of `GET /admin/canary/metrics/history`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    side: canary_shared::Side,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// A history query, checked: which side, from when, how many samples.
#[derive(Debug, PartialEq)]
pub(crate) struct HistoryQuery {
    pub(crate) side: canary_shared::Side,
    pub(crate) since: canary_shared::UnixMillis,
    pub(crate) limit: u32,
}

/// The history query from the raw query string: a `since` the store can
/// hold, a `limit` of at most a day of seconds.
pub(crate) fn history_query(raw: Option<&str>) -> Result<HistoryQuery, crate::api::ApiError> {
    let params: HistoryParams = crate::api::parse_query(raw)?;
    crate::api::check_store_millis("since", params.since)?;
    crate::api::check_limit(params.limit, MAX_HISTORY_SAMPLES)?;
    Ok(HistoryQuery {
        side: params.side,
        since: canary_shared::UnixMillis(params.since.unwrap_or(0)),
        limit: params.limit.unwrap_or(3600),
    })
}

/// `GET /admin/canary/metrics/history?side=canary&since=<unix ms>&limit=`:
/// stored per-second samples, oldest first, kept across restarts.
pub(crate) async fn get_history(
    State(app): State<AppState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<Vec<canary_shared::SecondSample>>, crate::api::ApiError> {
    let HistoryQuery { side, since, limit } = history_query(raw.as_deref())?;
    let store = std::sync::Arc::clone(&app.store);
    let samples = tokio::task::spawn_blocking(move || store.seconds(side, since, limit))
        .await
        .map_err(|err| crate::api::ApiError::Internal(err.to_string()))?
        .map_err(|err| crate::api::ApiError::Unavailable(err.to_string()))?;
    Ok(Json(samples))
}

/// `POST /admin/canary/metrics/custom`: a service reports a value of a
/// metric configured with `from: push`.
pub(crate) async fn push_custom_metric(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<canary_shared::CustomMetric>, crate::api::ApiError> {
    use crate::api::ApiError;
    let push: canary_shared::CustomMetricPush = crate::api::body::json_body(&headers, &body?)?;
    if !app.custom.accepts_push(&push.name) {
        let accepted = app.custom.pushed_names();
        return Err(ApiError::UnprocessableField {
            field: "name",
            message: if accepted.is_empty() {
                format!(
                    "`{}` is not a pushed metric: no metric under metrics.custom has `from: push`",
                    push.name
                )
            } else {
                format!(
                    "`{}` is not a pushed metric; these are: {}",
                    push.name,
                    accepted.join(", ")
                )
            },
        });
    }
    if !push.value.is_finite() {
        return Err(ApiError::UnprocessableField {
            field: "value",
            message: "value must be a finite number".to_owned(),
        });
    }
    let now = app.clock.now();
    let at = push.timestamp.unwrap_or(now);
    let max_age_ms =
        u64::try_from(app.config.metrics.push_max_age.0.as_millis()).unwrap_or(u64::MAX);
    if now.0.saturating_sub(at.0) > max_age_ms {
        return Err(ApiError::UnprocessableField {
            field: "timestamp",
            message: format!(
                "timestamp is {} s old, more than push_max_age ({} s): it would count as no data",
                now.0.saturating_sub(at.0) / 1000,
                max_age_ms / 1000
            ),
        });
    }
    if at.0.saturating_sub(now.0) > 60_000 {
        return Err(ApiError::UnprocessableField {
            field: "timestamp",
            message: "timestamp is more than a minute in the future; it is in Unix milliseconds"
                .to_owned(),
        });
    }
    app.custom.record(push.side, &push.name, Ok(push.value), at);
    let reading = app
        .custom
        .view(push.side, now)
        .into_iter()
        .find(|metric| metric.name == push.name)
        .ok_or_else(|| ApiError::Internal("the pushed metric vanished".to_owned()))?;
    Ok(Json(reading))
}

/// `GET /metrics`: canary's own metrics in the Prometheus text format.
pub(crate) async fn prometheus_metrics(
    State(app): State<AppState>,
) -> impl axum::response::IntoResponse {
    let state = app.state.borrow().clone();
    let totals: Vec<_> = canary_shared::Side::BOTH
        .into_iter()
        .map(|side| (side, app.recorder.totals(side)))
        .collect();
    let text = app.controller.own_metrics.render(&state, &totals);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
