//! The built console: hashed assets cached for a year, `index.html` never
//! cached, and client-side routes answered with `index.html`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use canary_shared::api::BASE_PATH;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::api::{ApiError, AppState};

/// trunk names built files `name-<16 hex digits>.ext`; such a name never
/// changes content, so browsers may keep it for good.
fn is_hashed(file_name: &str) -> bool {
    let stem = file_name.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

/// `GET /admin/canary` and `/admin/canary/`.
pub(crate) async fn index(State(app): State<AppState>) -> Response {
    let path = app.assets_dir.join("index.html");
    match tokio::fs::read_to_string(&path).await {
        Ok(html) => {
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "console not built");
            let message = format!(
                "The console is not built: {} is missing. Run `cargo xtask build-app` \
                 (or start with `cargo xtask run`), or point --assets-dir at a built console.",
                path.display()
            );
            let page = format!(
                "<!doctype html><title>canary</title><h1>canary</h1><p>{}</p>",
                html_escape(&message)
            );
            (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
        }
    }
}

/// `GET /admin/canary/{*path}`: a built file, or the console for a client route.
pub(crate) async fn asset(State(app): State<AppState>, request: Request) -> Response {
    let relative = request
        .uri()
        .path()
        .strip_prefix(BASE_PATH)
        .unwrap_or("/")
        .to_owned();
    if relative == "/index.html" {
        return index(State(app)).await;
    }
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let (mut parts, body) = request.into_parts();
    parts.uri = match Uri::builder().path_and_query(relative.as_str()).build() {
        Ok(uri) => uri,
        Err(_) => return ApiError::NotFound { path: relative }.into_response(),
    };
    let served = ServeDir::new(&app.assets_dir)
        .oneshot(Request::from_parts(parts, body))
        .await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(infallible) => match infallible {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        // A client-side route such as /admin/canary/history loads the console,
        // which routes itself; anything else is a plain 404.
        return if wants_html {
            index(State(app)).await
        } else {
            ApiError::NotFound {
                path: format!("{BASE_PATH}{relative}"),
            }
            .into_response()
        };
    }
    let file_name = relative.rsplit('/').next().unwrap_or_default();
    let cache = if is_hashed(file_name) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use crate::api::assets::is_hashed;

    #[test]
    fn trunk_hashed_names_are_recognised() {
        assert!(is_hashed("canary-app-3f2a9c0d1e4b5a67.js"));
        assert!(is_hashed("canary-app-3f2a9c0d1e4b5a67_bg.wasm"));
        assert!(is_hashed("style-0123456789abcdef.css"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("favicon.svg"));
        assert!(!is_hashed("canary-app-xyz.js"));
    }
}
