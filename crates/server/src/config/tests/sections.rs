//! Tests of the later sections' settings (the Gateway API router, HTTP/2
//! limits and upstream protocols, fast windows, shadow traffic, the path
//! prefix and panel link, single sign-on and push): each refused at the
//! place it is written.

use std::time::Duration;

use expect_test::expect;

use super::{SEED, check_error};
use crate::config::Config;

#[test]
fn gateway_api_router_errors_name_the_field() {
    let router = |body: &str| format!("router:\n  kind: gateway_api\n{body}canary:\n");
    check_error(
        "canary:\n",
        &router(""),
        expect![[
            r#"<config>:3:9: router.kind: gateway_api needs router.gateway_api: the HTTPRoute and the two Services whose weights canary sets"#
        ]],
    );
    check_error(
        "canary:\n",
        &router("  gateway_api:\n    route: Shop\n    services: { production: a, canary: b }\n"),
        expect![[
            r#"<config>:5:12: router.gateway_api.route: "Shop" is not a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"#
        ]],
    );
    check_error(
        "canary:\n",
        &router("  gateway_api:\n    route: shop\n    services: { production: a, canary: a }\n"),
        expect![
            "<config>:6:40: router.gateway_api.services.canary: production and canary must be two different Services"
        ],
    );
    check_error(
        "canary:\n",
        &router(
            "  gateway_api:\n    route: shop\n    services: { production: a, canary: b }\n    log_listen: \"0.0.0.0:5140\"\n",
        ),
        expect![
            "<config>:7:17: router.gateway_api.log_listen: 0.0.0.0:5140 is not on loopback: syslog over UDP is unauthenticated, so anyone who reaches it could forge the measurements; listen on 127.0.0.1"
        ],
    );
    let text = SEED.replacen(
        "canary:\n",
        &router("  gateway_api:\n    route: shop\n    services: { production: shop-stable, canary: shop-canary }\n"),
        1,
    );
    let config = Config::from_yaml(&text).unwrap();
    let gateway = config.router.gateway_api.unwrap();
    assert_eq!(gateway.accept_timeout.0, Duration::from_secs(60));
    assert_eq!(gateway.namespace, None, "the kubeconfig's namespace");
}

#[test]
fn http2_limits_outside_what_http2_allows_name_the_field() {
    let proxy = |body: &str| format!("proxy:\n  http2:\n{body}canary:\n");
    check_error(
        "canary:\n",
        &proxy("    stream_window: \"4GiB\"\n"),
        expect![[
            r#"<config>:4:20: proxy.http2.stream_window: must be from 65535 to 2147483647 bytes (HTTP/2 counts them in 31 bits), not 4294967296"#
        ]],
    );
    check_error(
        "canary:\n",
        &proxy("    max_concurrent_streams: 0\n"),
        expect![
            "<config>:4:29: proxy.http2.max_concurrent_streams: 0 streams would refuse every HTTP/2 request"
        ],
    );
    let text = SEED.replacen(
        "canary:\n",
        &proxy("    max_header_list_size: \"16KiB\"\n"),
        1,
    );
    let config = Config::from_yaml(&text).unwrap();
    assert_eq!(config.proxy.http2.max_header_list_size.0, 16 * 1024);
    assert_eq!(config.proxy.http2.max_concurrent_streams, 100);
}

#[test]
fn an_upstream_s_protocol_must_fit_its_url_and_grpc_codes_are_names_or_numbers() {
    let with = |upstream: &str| {
        format!(
            "upstreams:\n  production:\n    url: \"http://10.0.0.11:8080\"\n  canary:\n{upstream}canary:\n"
        )
    };
    check_error(
        "canary:\n",
        &with("    url: \"http://10.0.0.12:8080\"\n    protocol: h2\n"),
        expect![
            "<config>:7:15: upstreams.canary.protocol: h2 is HTTP/2 over TLS: give an https:// URL, or use h2c for HTTP/2 in clear text"
        ],
    );
    check_error(
        "canary:\n",
        &with("    url: \"https://shop.internal\"\n    protocol: h2c\n"),
        expect![
            "<config>:7:15: upstreams.canary.protocol: h2c is HTTP/2 in clear text: give an http:// URL, or use h2 for HTTP/2 over TLS"
        ],
    );
    check_error(
        "canary:\n",
        &with("    url: \"http://10.0.0.12:8080\"\n    ca_file: ca.pem\n"),
        expect!["<config>:7:14: upstreams.canary.ca_file: a CA file is for an https:// URL"],
    );
    check_error(
        "canary:\n",
        "proxy:\n  grpc: { failure_codes: [UNAVAILABLE, TEAPOT] }\ncanary:\n",
        expect![[
            r#"<config>:3:40: proxy.grpc.failure_codes[1]: "TEAPOT" is not a gRPC status code such as UNAVAILABLE or INTERNAL"#
        ]],
    );
    let text = SEED.replacen(
        "canary:\n",
        "proxy:\n  grpc: { failure_codes: [unavailable, 13] }\ncanary:\n",
        1,
    );
    let config = Config::from_yaml(&text).unwrap();
    let codes: Vec<u8> = config
        .proxy
        .grpc
        .failure_codes
        .iter()
        .map(|code| code.0)
        .collect();
    assert_eq!(codes, [14, 13]);
}

#[test]
fn a_fast_window_is_whole_seconds_under_the_minute_on_a_metric_the_proxy_measures() {
    let with_window = SEED.replacen(
        "      max_error_rate: 0.15",
        "      max_error_rate: 0.15\n      fast_window: 10s",
        1,
    );
    let config = Config::from_yaml(&with_window).unwrap();
    let specs = config.canary.check_specs();
    let windows: Vec<_> = specs
        .iter()
        .map(|spec| (spec.name.as_str(), spec.fast_window_secs))
        .collect();
    assert_eq!(
        windows,
        [
            ("Total Latency", None),
            ("Memory Queries", None),
            ("Latency threshold", Some(10)),
            ("Success rate threshold", Some(10)),
            ("Error rate threshold", Some(10)),
        ]
    );
    check_error(
        "      max_error_rate: 0.15",
        "      max_error_rate: 0.15\n      fast_window: 60s",
        expect![[
            r#"<config>:10:20: canary.auto_progression.thresholds.fast_window: fast_window "60s" must be whole seconds from 2s to 59s (the minute is always judged; 10s is usual)"#
        ]],
    );
    check_error(
        "      threshold: 50\n",
        "      threshold: 50\n      fast_window: 5s\n",
        expect![[
            r#"<config>:16:7: canary.safety_checks[1]: check "Memory Queries": `fast_window` applies to the metrics the proxy measures (such as error_rate); `memory_query_latency_ms` comes from a source on its own schedule"#
        ]],
    );
}

#[test]
fn shadow_settings_are_checked_where_they_are_written() {
    let with_shadow = |shadow: &str| {
        let text = format!("{SEED}validation:\n  shadow:\n{shadow}");
        Config::from_yaml(&text).map(|config| config.rules().shadow)
    };
    let loaded = with_shadow("    share: 5\n").unwrap().unwrap();
    assert_eq!((loaded.share.percent(), loaded.duration_ms), (5.0, 120_000));
    let cases = [
        ("    share: 150\n", "share 150"),
        ("    share: 0\n", "share 0 copies nothing"),
        ("    share: 5\n    methods: [get]\n", "write it in capitals"),
        ("    share: 5\n    queue: 0\n", "from 1 to 10000"),
        (
            "    share: 5\n    compare_body: json\n    ignore_fields: [\"meta/id\"]\n",
            "starts with `/`",
        ),
        (
            "    share: 5\n    ignore_fields: [\"/id\"]\n",
            "validation.shadow.ignore_fields: ignore_fields are JSON pointers: they apply with compare_body: json",
        ),
        (
            "    share: 5\n    compare_body: html\n",
            "unknown variant `html`",
        ),
    ];
    for (shadow, expected) in cases {
        let message = with_shadow(shadow).unwrap_err().to_string();
        assert!(message.contains(expected), "{shadow}: {message}");
        assert!(message.starts_with("<config>:"), "located: {message}");
    }
    let routed = format!(
        "{SEED}router:\n  kind: haproxy\n  haproxy: {{ instances: [\"/run/haproxy.sock\"], backend: app, servers: {{ production: a, canary: b }}, log_listen: \"127.0.0.1:5140\" }}\nvalidation:\n  shadow: {{ share: 5 }}\n"
    );
    expect!["<config>:24:13: validation.shadow: shadow traffic is copied by the built-in proxy, and router.kind is haproxy: leave validation.shadow out, or use the built-in router"]
        .assert_eq(&Config::from_yaml(&routed).unwrap_err().to_string());
}

#[test]
fn a_mismatch_rate_check_is_judged_only_with_a_shadow_step() {
    let check = "    - { name: Same answers, metric: shadow_mismatch_rate, threshold: 0.01, alert_level: critical }\n";
    let text = SEED.replacen(
        "  safety_checks:\n",
        &format!("  safety_checks:\n{check}"),
        1,
    );
    let without = Config::from_yaml(&text).unwrap();
    assert!(
        without.warnings()[0].contains("which only shadow traffic provides"),
        "{:?}",
        without.warnings()
    );
    let with =
        Config::from_yaml(&format!("{text}validation:\n  shadow: {{ share: 5 }}\n")).unwrap();
    let spec = &with.check_specs()[0];
    assert!(spec.has_source);
    assert_eq!(spec.comparator, canary_shared::Comparator::Max);
    let over = text.replace("threshold: 0.01", "threshold: 5");
    assert!(
        Config::from_yaml(&over)
            .unwrap_err()
            .to_string()
            .contains("is a rate between 0 and 1")
    );
}

#[test]
fn a_path_prefix_and_a_panel_link_are_checked_where_they_are_written() {
    let with_server = |lines: &str| Config::from_yaml(&format!("server:\n{lines}{SEED}"));
    let config =
        with_server("  path_prefix: /ops/deploys\n  panel_link: { url: /admin/ }\n").unwrap();
    assert_eq!(config.server.prefix(), "/ops/deploys");
    assert_eq!(config.server.panel_link.unwrap().label.0, "Admin panel");
    assert_eq!(Config::from_yaml(SEED).unwrap().server.prefix(), "");
    for (lines, expected) in [
        ("  path_prefix: ops\n", "it starts with /"),
        ("  path_prefix: /ops/\n", "it does not end with /"),
        ("  path_prefix: /a/../b\n", "not `.` or `..`"),
        ("  path_prefix: \"/a b\"\n", "each segment is letters"),
        (
            "  path_prefix: /admin/canary\n",
            "the console's own path is added after it",
        ),
        (
            "  panel_link: { url: \"javascript:alert(1)\" }\n",
            "give an http:// or https:// URL",
        ),
        (
            "  panel_link: { url: \"//evil.example\" }\n",
            "give an http:// or https:// URL",
        ),
        (
            "  panel_link: { url: /admin/, label: \"\" }\n",
            "1 to 40 characters",
        ),
    ] {
        let message = with_server(lines).unwrap_err().to_string();
        assert!(message.contains(expected), "{lines}: {message}");
        assert!(message.starts_with("<config>:2:"), "located: {message}");
    }
}

#[test]
fn single_sign_on_and_push_settings_are_checked_at_their_place_and_secrets_never_shown() {
    let oidc = |extra: &str| {
        format!(
            "auth:\n  oidc:\n    issuer: \"https://sso.example.com\"\n    client_id: canary\n    client_secret: \"s3cret-of-the-client\"\n{extra}{SEED}"
        )
    };
    let config = Config::from_yaml(&oidc(
        "    redirect_url: \"https://canary.example.com/ops/admin/canary/auth/oidc/callback\"\n",
    ))
    .expect("single sign-on alone is a way to sign in");
    let sso = config.auth.as_ref().unwrap().oidc.as_ref().unwrap();
    assert!(!format!("{sso:?}").contains("s3cret"), "{sso:?}");
    let shown = serde_json::to_string(&config).unwrap();
    assert!(
        !shown.contains("s3cret") && shown.contains("<redacted>"),
        "{shown}"
    );
    let error = Config::from_yaml(&oidc(
        "    redirect_url: \"https://canary.example.com/callback\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with(
            "<config>:6:19: auth.oidc.redirect_url: \"https://canary.example.com/callback\" must be"
        ) && error.contains("ending in /admin/canary/auth/oidc/callback"),
        "{error}"
    );
    let error = Config::from_yaml(&oidc("    redirect_url: \"ftp://x/y\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("<config>:6:19: auth.oidc.redirect_url: invalid URL"),
        "{error}"
    );

    let push = |body: &str| Config::from_yaml(&format!("push:\n{body}{SEED}"));
    assert_eq!(
        push("  ttl: 30m\n").unwrap().push.ttl.0,
        Duration::from_secs(1800)
    );
    let error = push("  ttl: 2d\n").unwrap_err().to_string();
    assert!(
        error.contains("push.ttl") && error.contains("from 1s to 24h"),
        "{error}"
    );
    let error = push("  contact: oncall@example.com\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("<config>:2:12: push.contact: invalid contact"),
        "{error}"
    );
    let error = push("  services: [\"https://push.example.com/path\"]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("push.services"), "{error}");
    let served_over_https = |push: &str| {
        Config::from_yaml(&format!(
            "server:\n  tls: {{ cert_file: cert.pem, key_file: key.pem }}\n{push}{SEED}"
        ))
        .unwrap()
        .warnings()
        .into_iter()
        .filter(|warning| warning.contains("push.contact"))
        .count()
    };
    assert_eq!(served_over_https(""), 1, "iPads would get no alert");
    assert_eq!(
        served_over_https("push:\n  contact: \"mailto:oncall@example.com\"\n"),
        0
    );
    assert_eq!(served_over_https("push:\n  enabled: false\n"), 0);
}
