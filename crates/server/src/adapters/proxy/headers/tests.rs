//! Table tests of the header rewriting: each case is a client's head, and
//! the head the upstream gets.

use expect_test::{Expect, expect};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::adapters::proxy::headers::{
    BodyFraming, ClientInfo, RequestRewrite, rewrite_request, set_framing, upstream_target,
};
use crate::config::{HostHeader, UpstreamUrl};

/// Parses `name: value` lines into a header map, in order.
fn headers(lines: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        map.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    map
}

fn render(map: &HeaderMap) -> String {
    let mut lines: Vec<String> = map
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
        .collect();
    // Sorted: the upstream reads fields by name, not by position.
    lines.sort();
    lines.join("\n")
}

/// Rewrites `client_head` as the proxy does for a client at 192.0.2.9 and
/// an upstream at 10.0.0.12:8080, then frames it by `framing`.
fn check(
    client_head: &str,
    host_header: HostHeader,
    upgrade: bool,
    framing: BodyFraming,
    expected: Expect,
) {
    let mut map = headers(client_head);
    let client = ClientInfo::new("192.0.2.9:50000".parse().unwrap());
    let authority = HeaderValue::from_static("10.0.0.12:8080");
    rewrite_request(
        &mut map,
        &RequestRewrite {
            client: &client,
            host_header,
            upstream_authority: &authority,
            hidden: Some("x-canary-token"),
            upgrade,
        },
    );
    set_framing(&mut map, framing);
    expected.assert_eq(&render(&map));
}

#[test]
fn connection_tokens_never_remove_framing_or_routing_fields() {
    check(
        "host: shop.example\ncontent-length: 56\nconnection: content-length, transfer-encoding, host, x-trace",
        HostHeader::Preserve,
        false,
        BodyFraming::Length(56),
        expect![[r#"
            content-length: 56
            host: shop.example
            x-forwarded-for: 192.0.2.9
            x-forwarded-host: shop.example
            x-forwarded-proto: http"#]],
    );
}

#[test]
fn hop_by_hop_fields_and_the_token_stay_here() {
    check(
        "host: shop.example\nkeep-alive: timeout=5\nproxy-authorization: Basic eA==\nte: trailers\ntrailer: x-sum\nproxy-connection: keep-alive\nx-canary-token: secret\nx-canary: always\naccept: */*",
        HostHeader::Preserve,
        false,
        BodyFraming::None,
        expect![[r#"
            accept: */*
            host: shop.example
            x-canary: always
            x-forwarded-for: 192.0.2.9
            x-forwarded-host: shop.example
            x-forwarded-proto: http"#]],
    );
}

#[test]
fn the_framing_is_written_from_the_forwarded_body() {
    for (label, client_head, framing) in [
        (
            "chunked from the client",
            "host: a\ntransfer-encoding: chunked",
            BodyFraming::Chunked,
        ),
        (
            "an empty POST keeps its zero",
            "host: a\ncontent-length: 0",
            BodyFraming::EmptyWithLength,
        ),
        (
            "a GET has none",
            "host: a\ncontent-length: 5",
            BodyFraming::None,
        ),
    ] {
        let mut map = headers(client_head);
        set_framing(&mut map, framing);
        let framing_fields: Vec<String> = render(&map)
            .lines()
            .filter(|line| {
                line.starts_with("content-length") || line.starts_with("transfer-encoding")
            })
            .map(str::to_owned)
            .collect();
        match framing {
            BodyFraming::Chunked => {
                assert_eq!(framing_fields, ["transfer-encoding: chunked"], "{label}")
            }
            BodyFraming::EmptyWithLength => {
                assert_eq!(framing_fields, ["content-length: 0"], "{label}")
            }
            _ => assert!(framing_fields.is_empty(), "{label}: {framing_fields:?}"),
        }
    }
    assert_eq!(
        BodyFraming::of(Some(0), false),
        BodyFraming::EmptyWithLength
    );
    assert_eq!(BodyFraming::of(None, false), BodyFraming::None);
    assert_eq!(BodyFraming::of(Some(7), true), BodyFraming::Length(7));
    assert_eq!(BodyFraming::of(None, true), BodyFraming::Chunked);
}

#[test]
fn forwarded_for_keeps_every_earlier_hop() {
    check(
        "host: a\nx-forwarded-for: 1.1.1.1\nx-forwarded-for: 2.2.2.2, 3.3.3.3\nx-forwarded-proto: https\nx-forwarded-host: spoofed",
        HostHeader::Preserve,
        false,
        BodyFraming::None,
        expect![[r#"
            host: a
            x-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.9
            x-forwarded-host: a
            x-forwarded-proto: http"#]],
    );
}

#[test]
fn the_host_is_the_clients_or_the_upstreams() {
    check(
        "host: shop.example",
        HostHeader::Upstream,
        false,
        BodyFraming::None,
        expect![[r#"
            host: 10.0.0.12:8080
            x-forwarded-for: 192.0.2.9
            x-forwarded-host: shop.example
            x-forwarded-proto: http"#]],
    );
    // An HTTP/1.0 client may send none; the upstream still gets one.
    check(
        "accept: */*",
        HostHeader::Preserve,
        false,
        BodyFraming::None,
        expect![[r#"
            accept: */*
            host: 10.0.0.12:8080
            x-forwarded-for: 192.0.2.9
            x-forwarded-proto: http"#]],
    );
}

#[test]
fn an_upgrade_keeps_its_upgrade_and_nothing_else_of_connection() {
    check(
        "host: a\nupgrade: websocket\nconnection: keep-alive, Upgrade, x-secret\nx-secret: 1\nsec-websocket-key: dGhl",
        HostHeader::Preserve,
        true,
        BodyFraming::None,
        expect![[r#"
            connection: upgrade
            host: a
            sec-websocket-key: dGhl
            upgrade: websocket
            x-forwarded-for: 192.0.2.9
            x-forwarded-host: a
            x-forwarded-proto: http"#]],
    );
    // The same fields without the upgrade asked for: no upgrade goes upstream.
    check(
        "host: a\nupgrade: websocket",
        HostHeader::Preserve,
        false,
        BodyFraming::None,
        expect![[r#"
            host: a
            x-forwarded-for: 192.0.2.9
            x-forwarded-host: a
            x-forwarded-proto: http"#]],
    );
}

#[test]
fn the_target_joins_the_upstreams_base_path() {
    let base: UpstreamUrl = "http://10.0.0.12:8080".parse().unwrap();
    let prefixed: UpstreamUrl = "http://10.0.0.12:8080/shop/".parse().unwrap();
    for (base, uri, expected) in [
        (&base, "/cart?id=1", "/cart?id=1"),
        (&base, "http://a/x", "/x"),
        (&prefixed, "/cart?id=1", "/shop/cart?id=1"),
        (&prefixed, "*", "*"),
    ] {
        let uri: hyper::Uri = uri.parse().unwrap();
        assert_eq!(upstream_target(base, &uri), expected, "{uri}");
    }
}
