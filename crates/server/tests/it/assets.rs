//! The console's files go out precompressed to a browser that accepts it:
//! brotli before gzip, byte-identical once decompressed, and as they are to
//! a client that accepts neither, with the immutable caching kept. And the
//! console is framed only by the admin panel named in the config.

use std::io::{Read, Write};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::TestApp;

const SCRIPT: &str = "canary-app-0123456789abcdef.js";

/// `GET` of the script with `accept_encoding`: the headers and the raw body.
async fn fetch(app: &TestApp, accept_encoding: Option<&str>) -> (axum::http::HeaderMap, Vec<u8>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = hyper::Request::get(app.url(&format!("/admin/canary/{SCRIPT}")));
    if let Some(encodings) = accept_encoding {
        request = request.header("accept-encoding", encodings);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (headers, body.to_vec())
}

#[tokio::test]
async fn the_console_goes_out_compressed_to_a_browser_that_accepts_it() {
    let app = TestApp::start().await;
    let script: String = (0..4000)
        .map(|n| format!("export const value{n} = {n};\n"))
        .collect();
    let dir = app.assets.path();
    std::fs::write(dir.join(SCRIPT), &script).unwrap();
    let mut brotli_bytes = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut brotli_bytes, 4096, 11, 22);
        writer.write_all(script.as_bytes()).unwrap();
    }
    std::fs::write(dir.join(format!("{SCRIPT}.br")), &brotli_bytes).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(script.as_bytes()).unwrap();
    std::fs::write(dir.join(format!("{SCRIPT}.gz")), gzip.finish().unwrap()).unwrap();

    let (headers, body) = fetch(&app, Some("gzip, deflate, br, zstd")).await;
    assert_eq!(headers["content-encoding"], "br");
    assert!(body.len() * 5 < script.len(), "{} bytes", body.len());
    let mut decoded = String::new();
    brotli::Decompressor::new(body.as_slice(), 4096)
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, script);
    for (name, value) in [
        ("cache-control", "public, max-age=31536000, immutable"),
        ("vary", "accept-encoding"),
        ("content-type", "text/javascript"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }

    // Chromium over plain HTTP offers no brotli.
    let (headers, body) = fetch(&app, Some("gzip, deflate")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, script);

    for accepts in [None, Some("identity")] {
        let (headers, body) = fetch(&app, accepts).await;
        assert!(!headers.contains_key("content-encoding"), "{accepts:?}");
        assert_eq!(body, script.as_bytes(), "{accepts:?}");
    }
}

#[tokio::test]
async fn the_console_may_be_framed_only_by_the_configured_admin_panel() {
    let app = TestApp::start_with(|config| {
        config.server.frame_ancestors = vec![canary_server::config::AllowedOrigin(
            "https://admin.example.com".to_owned(),
        )];
    })
    .await;
    let (status, headers, _) =
        crate::support::http_get(&app.url("/admin/canary/"), "text/html").await;
    assert_eq!(status, 200);
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.ends_with("frame-ancestors 'self' https://admin.example.com"),
        "{policy}"
    );
    assert!(
        !headers.contains_key("x-frame-options"),
        "DENY would forbid the panel's frame in browsers that read only X-Frame-Options"
    );

    let unframed = TestApp::start().await;
    let (_, headers, _) =
        crate::support::http_get(&unframed.url("/admin/canary/"), "text/html").await;
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
}
