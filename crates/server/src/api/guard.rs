//! Cross-site protection for the admin API until logins arrive.
//!
//! The API has no logins yet and listens on loopback only, so the one way
//! in from elsewhere is a web page in the operator's own browser. Browsers
//! say where a request comes from: a write or a WebSocket handshake whose
//! `Sec-Fetch-Site` is `cross-site` or `same-site`, or whose `Origin` is not
//! this server's own, is refused. Scripts (curl, the CLI) send neither header
//! and pass.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// Whether the request comes from another site's page.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        && matches!(site, "cross-site" | "same-site")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // Exact match of scheme-less authority: no wildcards, no suffix matching.
    let origin_authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match origin_authority {
        Some(authority) if !host.is_empty() && authority == host => None,
        _ => Some(format!("Origin {origin} is not this server ({host})")),
    }
}

/// Refuses cross-site writes and WebSocket handshakes.
pub(crate) async fn same_site_only(request: Request, next: Next) -> Response {
    let is_write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let is_upgrade = request.headers().contains_key(header::UPGRADE);
    if (is_write || is_upgrade)
        && let Some(why) = cross_site(request.headers())
    {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), %why, "cross-site request refused");
        return ApiError::CrossSite(why).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use crate::api::guard::cross_site;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_this_servers_own_pages_and_scripts_pass() {
        assert_eq!(cross_site(&headers(&[])), None, "a script sends no Origin");
        assert_eq!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:8000")
            ])),
            None
        );
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
        for refused in [
            headers(&[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:8000.evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://127.0.0.1:80001"),
            ]),
            headers(&[("host", "127.0.0.1:8000"), ("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ] {
            assert!(cross_site(&refused).is_some(), "{refused:?} passed");
        }
    }
}
