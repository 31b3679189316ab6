//! The built console: hashed assets cached for a year and sent
//! precompressed (brotli or gzip, made at build time) to a browser that
//! accepts it, `index.html` never cached, and client-side routes answered
//! with `index.html`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use canary_shared::api::BASE_PATH;
use sha2::{Digest, Sha256};
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
            let html = with_prefix(html, app.config.server.prefix());
            let policy = content_security_policy(&html, &app.config.server.frame_ancestors);
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if let Ok(policy) = HeaderValue::from_str(&policy) {
                headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            }
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

/// `index.html` with the console's files under `prefix`: trunk writes their
/// paths absolute (`/admin/canary/…`), for a console at the root.
fn with_prefix(html: String, prefix: &str) -> String {
    if prefix.is_empty() {
        return html;
    }
    html.replace("'/admin/canary/", &format!("'{prefix}/admin/canary/"))
        .replace("\"/admin/canary/", &format!("\"{prefix}/admin/canary/"))
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
    // `cargo xtask build-app` writes `.br` and `.gz` beside each file:
    // sent as they are to a browser that accepts them (`Content-Encoding`,
    // `Vary: Accept-Encoding`), the file itself to any other.
    let served = ServeDir::new(&app.assets_dir)
        .precompressed_br()
        .precompressed_gzip()
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
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Which encoding was sent depends on the request's Accept-Encoding: a
    // shared cache must not hand brotli to a client that asked for gzip.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// The console's Content-Security-Policy: its own files only, plus the
/// inline start-up script trunk writes into `index.html`, allowed by its
/// hash rather than by allowing every inline script; framed by no page, or
/// only by its own and those of `frame_ancestors` (`server.frame_ancestors`).
fn content_security_policy(html: &str, frame_ancestors: &[crate::config::AllowedOrigin]) -> String {
    let mut script_sources = String::from("'self' 'wasm-unsafe-eval'");
    for script in inline_scripts(html) {
        let digest = Sha256::digest(script.as_bytes());
        script_sources.push_str(&format!(" 'sha256-{}'", STANDARD.encode(digest)));
    }
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        let origins: Vec<&str> = frame_ancestors
            .iter()
            .map(|origin| origin.0.as_str())
            .collect();
        format!("'self' {}", origins.join(" "))
    };
    format!(
        "default-src 'self'; script-src {script_sources}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {ancestors}"
    )
}

/// The text of every `<script>` element without a `src`.
fn inline_scripts(html: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let after_open = &rest[open..];
        let Some(tag_end) = after_open.find('>') else {
            break;
        };
        let tag = &after_open[..tag_end];
        let body_and_rest = &after_open[tag_end + 1..];
        let Some(close) = body_and_rest.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            scripts.push(&body_and_rest[..close]);
        }
        rest = &body_and_rest[close..];
    }
    scripts
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use crate::api::assets::{content_security_policy, is_hashed};

    #[test]
    fn the_policy_allows_the_inline_start_up_script_by_its_hash_only() {
        let html = "<head><script type=\"module\">init();</script>\
                    <script src=\"/x.js\"></script></head>";
        let policy = content_security_policy(html, &[]);
        // `printf %s 'init();' | openssl dgst -sha256 -binary | base64`
        assert!(
            policy.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-GEnM5q1nYY/iACnyMTdov+tNp9OFcBnnDgNXUXaVNXc='"),
            "{policy}"
        );
        let script_src = policy
            .split(';')
            .find(|d| d.contains("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
        let panel = crate::config::AllowedOrigin("https://admin.example.com".to_owned());
        let framed = content_security_policy(html, &[panel]);
        assert!(
            framed.ends_with("frame-ancestors 'self' https://admin.example.com"),
            "{framed}"
        );
    }

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
