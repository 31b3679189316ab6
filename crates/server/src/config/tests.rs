//! Tests of configuration parsing and its error messages.

use std::path::Path;
use std::time::Duration;

use canary_shared::{AlertLevel, CanaryShare, Comparator};
use expect_test::{Expect, expect};

use crate::config::{Config, ConfigError, NotifyUrl, parse_duration};

const SEED: &str = r#"
canary:
  auto_progression:
    enabled: true
    wait_time: "24h"
    thresholds:
      max_latency: "1000ms"
      min_success_rate: 0.85
      max_error_rate: 0.15
  traffic_steps: [5, 25, 50, 100]
  safety_checks:
    - name: "Total Latency"
      metric: "p95_latency_ms"
      threshold: 1000
      alert_level: "critical"
    - name: "Memory Queries"
      metric: "memory_query_latency_ms"
      threshold: 50
      alert_level: "warning"
"#;

/// Checks the error for `SEED` with `from` replaced by `to`.
fn check_error(from: &str, to: &str, expected: Expect) {
    assert!(SEED.contains(from), "the seed has no {from:?}");
    let text = SEED.replacen(from, to, 1);
    match Config::from_yaml(&text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => expected.assert_eq(&err.to_string()),
    }
}

#[test]
fn the_seed_block_loads_unchanged_with_defaults_for_the_rest() {
    let config = Config::from_yaml(SEED).unwrap();
    assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:8000");
    assert_eq!(config.server.proxy_listen.to_string(), "127.0.0.1:8080");
    let steps: Vec<f64> = config
        .canary
        .traffic_steps
        .shares()
        .iter()
        .map(|s| s.percent())
        .collect();
    assert_eq!(steps, [5.0, 25.0, 50.0, 100.0]);
    assert_eq!(
        config.canary.auto_progression.wait_time.0,
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(
        config.canary.auto_progression.thresholds.max_latency.0,
        Duration::from_millis(1000)
    );
    assert_eq!(
        config.canary.auto_progression.thresholds.min_success_rate.0,
        0.85
    );
    let memory = &config.canary.safety_checks[1];
    assert_eq!(memory.metric, "memory_query_latency_ms");
    assert_eq!(
        memory.comparator,
        Comparator::Max,
        "a latency is implied to be a maximum"
    );
    assert_eq!(memory.alert_level, AlertLevel::Warning);
    assert!(
        config.canary.auto_rollback.enabled,
        "auto-rollback is armed unless switched off"
    );
}

#[test]
fn the_shipped_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../canary-config.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.upstreams.production.version.as_deref(),
        Some("v2.6.0")
    );
    assert_eq!(config.upstreams.canary.version.as_deref(), Some("v2.7.0"));
    assert_eq!(config.upstreams.production.health_check.path.0, "/healthz");
    assert_eq!(config.canary.safety_checks.len(), 2);
}

#[test]
fn check_warns_about_a_check_nothing_provides_and_a_promotion_nothing_follows() {
    let warnings = Config::from_yaml(SEED).unwrap().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].starts_with(
        "safety check \"Memory Queries\" reads `memory_query_latency_ms`, which nothing provides"
    ));
    assert!(warnings[1].starts_with("no deploy hook: after a promotion"));
    let provided = format!(
        "{SEED}metrics:\n  custom:\n    - {{ name: memory_query_latency_ms, from: push }}\n\
         hooks:\n  deploy: {{ command: [deploy.sh, \"{{image_tag}}\"] }}\n"
    );
    assert_eq!(
        Config::from_yaml(&provided).unwrap().warnings(),
        Vec::<String>::new()
    );
}

#[test]
fn promotion_swaps_roles_unless_a_promote_hook_redeploys_production() {
    use crate::domain::roles::Promotion;
    assert_eq!(
        Config::from_yaml(SEED).unwrap().rules().promotion,
        Promotion::SwapRoles
    );
    let hooked = format!("{SEED}hooks:\n  promote: {{ command: [promote.sh] }}\n");
    assert_eq!(
        Config::from_yaml(&hooked).unwrap().rules().promotion,
        Promotion::HookRedeploysProduction
    );
    let swapped = format!(
        "upstreams:\n  production: {{ url: \"http://127.0.0.1:9001\" }}\n  canary: {{ url: \"http://127.0.0.1:9002\" }}\n  on_promotion: swap_roles\n{hooked}"
    );
    assert_eq!(
        Config::from_yaml(&swapped).unwrap().rules().promotion,
        Promotion::SwapRoles
    );
    let unhooked = format!(
        "upstreams:\n  production: {{ url: \"http://127.0.0.1:9001\" }}\n  canary: {{ url: \"http://127.0.0.1:9002\" }}\n  on_promotion: promote_hook\n{SEED}"
    );
    expect!["<config>:4:17: upstreams.on_promotion: promote_hook needs hooks.promote, the script that redeploys production with the promoted version; without one use swap_roles"].assert_eq(&Config::from_yaml(&unhooked).unwrap_err().to_string());
}

#[test]
fn relative_paths_are_taken_from_the_config_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canary-config.yaml");
    let head = "server:\n  data_dir: data\n  assets_dir: console\n  tls: { cert_file: tls/cert.pem, key_file: /etc/canary/key.pem }\n\
                hooks:\n  deploy: { command: [scripts/deploy.sh, \"{image_tag}\"] }\n  rollback: { command: [sh, scripts/rollback.sh] }\n";
    std::fs::write(&file, format!("{head}{SEED}")).unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.server.data_dir, dir.path().join("data"));
    assert_eq!(config.server.assets_dir, dir.path().join("console"));
    let tls = config.server.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, dir.path().join("tls/cert.pem"));
    assert_eq!(
        tls.key_file,
        Path::new("/etc/canary/key.pem"),
        "absolute stays"
    );
    let deploy = &config.hooks.deploy.as_ref().unwrap().command.0;
    assert_eq!(Path::new(&deploy[0]), dir.path().join("scripts/deploy.sh"));
    assert_eq!(
        deploy[1], "{image_tag}",
        "arguments are the script's business"
    );
    let rollback = &config.hooks.rollback.as_ref().unwrap().command.0;
    assert_eq!(
        rollback,
        &["sh", "scripts/rollback.sh"],
        "a bare name is found on PATH"
    );

    std::fs::write(&file, SEED).unwrap();
    let defaults = Config::load(&file).unwrap();
    assert_eq!(
        defaults.server.assets_dir,
        Path::new(crate::config::ServerConfig::DEFAULT_ASSETS_DIR),
        "the repository's build output stays relative to the working directory"
    );
}

#[test]
fn errors_name_line_column_and_field() {
    check_error(
        "[5, 25, 50, 100]",
        "[5, 25, 25, 100]",
        expect![[
            r#"<config>:10:18: canary.traffic_steps: steps must be strictly increasing, but step 3 (25) follows 25"#
        ]],
    );
    check_error(
        "[5, 25, 50, 100]",
        "[5, 25, 50]",
        expect![[
            r#"<config>:10:18: canary.traffic_steps: the last step must be 100 so a rollout can finish, got 50"#
        ]],
    );
    check_error(
        "[5, 25, 50, 100]",
        "[0, 50, 100]",
        expect![[
            r#"<config>:10:18: canary.traffic_steps: step 1 is 0: every step must send the canary some traffic (1 to 100)"#
        ]],
    );
    check_error(
        "[5, 25, 50, 100]",
        "[5, 50, 150]",
        expect![[
            r#"<config>:10:18: canary.traffic_steps: step 3 (150): a share must be between 0 and 100 percent, got 150"#
        ]],
    );
    check_error(
        "wait_time: \"24h\"",
        "wait_time: \"24 hours\"",
        expect![[
            r#"<config>:5:16: canary.auto_progression.wait_time: invalid duration "24 hours": write a number with a unit, such as "500ms", "30s", "5m", "24h" or "1h30m""#
        ]],
    );
    check_error(
        "enabled: true",
        "enabled: true\n    speed: 3",
        expect![[
            r#"<config>:5:5: canary.auto_progression.speed: unknown field `speed`, expected one of `enabled`, `wait_time`, `thresholds`"#
        ]],
    );
    check_error(
        "min_success_rate: 0.85",
        "min_success_rate: 85",
        expect![[
            r#"<config>:8:25: canary.auto_progression.thresholds.min_success_rate: a rate must be between 0 and 1 (0.85 means 85 %), got 85"#
        ]],
    );
    check_error(
        "metric: \"memory_query_latency_ms\"",
        "metric: \"sandbox_runs\"",
        expect![[
            r#"<config>:16:7: canary.safety_checks[1]: check "Memory Queries": metric `sandbox_runs` does not say whether the threshold is a maximum or a minimum; add `comparator: max` or `comparator: min`"#
        ]],
    );
    check_error(
        "metric: \"p95_latency_ms\"",
        "metric: \"p95_latency_ms\"\n      comparator: min",
        expect![[
            r#"<config>:12:7: canary.safety_checks[0]: check "Total Latency": metric `p95_latency_ms` is always a maximum, so `comparator: min` cannot apply"#
        ]],
    );
    check_error(
        "threshold: 50",
        "threshold: fifty",
        expect![[
            r#"<config>:18:18: canary.safety_checks[1].threshold: invalid type: string "fifty", expected f64"#
        ]],
    );
    check_error(
        "alert_level: \"warning\"",
        "alert_level: \"loud\"",
        expect![[
            r#"<config>:19:20: canary.safety_checks[1].alert_level: unknown variant `loud`, expected `critical` or `warning`"#
        ]],
    );
    check_error(
        "  traffic_steps: [5, 25, 50, 100]\n",
        "",
        expect![[r#"<config>:3:3: canary: missing field `traffic_steps`"#]],
    );
}

#[test]
fn server_and_upstream_errors_name_the_field() {
    let with = |prefix: &str| {
        Config::from_yaml(&format!("{prefix}{SEED}"))
            .unwrap_err()
            .to_string()
    };
    expect![[r#"<config>:2:17: server.admin_listen: invalid socket address syntax"#]]
        .assert_eq(&with("server:\n  admin_listen: nope\n"));
    expect!["<config>:2:3: server.color: unknown field `color`, expected one of `admin_listen`, `proxy_listen`, `data_dir`, `assets_dir`, `metrics_retention`, `tls`, `frame_ancestors`, `path_prefix`, `panel_link`"]
        .assert_eq(&with("server:\n  color: blue\n"));
    expect![[r#"<config>:5:10: upstreams.canary.url: invalid URL "ftp://x": write it as http://host:port or https://host:port"#]]
        .assert_eq(&with(
            "upstreams:\n  production:\n    url: http://127.0.0.1:1\n  canary:\n    url: ftp://x\n",
        ));
    expect![[r#"<config>:4:26: upstreams.production.health_check.path: invalid path "healthz": it must start with '/'"#]]
        .assert_eq(&with(
            "upstreams:\n  production:\n    url: http://127.0.0.1:1\n    health_check: {path: healthz}\n  canary:\n    url: http://127.0.0.1:2\n",
        ));
}

#[test]
fn a_file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, SEED.replace("0.15", "1.5")).unwrap();
    let message = Config::load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:9:23: ", path.display())),
        "{message}"
    );
    assert!(
        message.contains("canary.auto_progression.thresholds.max_error_rate"),
        "{message}"
    );

    let missing = Config::load(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
    assert!(missing.to_string().contains("nope.yaml"));
}

#[test]
fn bad_yaml_syntax_is_located() {
    let message = Config::from_yaml("canary:\n  traffic_steps: [5, 25\n")
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("<config>:"), "{message}");
    assert!(
        message.contains("line") || message.matches(':').count() >= 3,
        "{message}"
    );
}

#[test]
fn durations_take_units_and_refuse_guesses() {
    assert_eq!(parse_duration("1000ms"), Ok(Duration::from_millis(1000)));
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    for bad in [
        "",
        "10",
        "ms",
        "5 s",
        "1.5s",
        "3w",
        "-1s",
        "99999999999999999999h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn step_shares_keep_two_decimals() {
    let config = Config::from_yaml(&SEED.replace("[5, 25, 50, 100]", "[0.5, 12.25, 100]")).unwrap();
    let steps = config.canary.traffic_steps.shares();
    assert_eq!(steps[0], CanaryShare::from_basis_points(50).unwrap());
    assert_eq!(steps[1], CanaryShare::from_basis_points(1225).unwrap());
}

#[test]
fn proxy_settings_parse_sizes_and_refuse_bad_values() {
    let with_proxy = |proxy: &str| Config::from_yaml(&format!("proxy:\n{proxy}{SEED}"));
    let config = with_proxy("  max_request_body: 10MiB\n").unwrap();
    assert_eq!(config.proxy.max_request_body.0, 10 << 20);
    let config = with_proxy("  max_request_body: 2048\n").unwrap();
    assert_eq!(config.proxy.max_request_body.0, 2048);
    let defaults = Config::from_yaml(SEED).unwrap().proxy;
    assert_eq!(
        defaults.side_override, None,
        "the override is off by default"
    );
    assert_eq!(defaults.client_header_timeout.0, Duration::from_secs(10));
    let config =
        with_proxy("  override: { trusted_networks: [\"10.0.0.0/8\", \"::1\"] }\n").unwrap();
    let side_override = config.proxy.side_override.unwrap();
    assert_eq!(side_override.header.0, "x-canary");
    assert!(side_override.trusted_networks[0].contains("10.200.3.4".parse().unwrap()));
    assert!(side_override.trusted_networks[0].contains("::ffff:10.0.0.1".parse().unwrap()));
    assert!(!side_override.trusted_networks[0].contains("11.0.0.1".parse().unwrap()));
    assert!(side_override.trusted_networks[1].contains("::1".parse().unwrap()));
    assert!(!side_override.trusted_networks[1].contains("127.0.0.1".parse().unwrap()));

    expect![[r#"<config>:2:21: proxy.max_request_body: invalid size "1.5MB": write bytes or a number with KiB, MiB or GiB, such as "10MiB""#]]
        .assert_eq(&with_proxy("  max_request_body: 1.5MB\n").unwrap_err().to_string());
    expect![[r#"<config>:2:23: proxy.override.header: invalid header name "x canary""#]].assert_eq(
        &with_proxy("  override: { header: \"x canary\", trusted_networks: [127.0.0.0/8] }\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:15: proxy.override: say who may force a side: `trusted_networks` (such as ["10.0.0.0/8"]), `token_sha256` (the SHA-256 of a token testers send in `token_header`), or both; leave the section out to turn the override off"#]].assert_eq(
        &with_proxy("  override: { header: x-canary }\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:34: proxy.override.trusted_networks[0]: invalid network "10.1.0.0/8": it has host bits set; did you mean "10.0.0.0/8"?"#]].assert_eq(
        &with_proxy("  override: { trusted_networks: [10.1.0.0/8] }\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:29: proxy.override.token_sha256: invalid SHA-256: write 64 hex digits, for example from `printf %s "$TOKEN" | sha256sum`"#]].assert_eq(
        &with_proxy("  override: { token_sha256: abc }\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:3: proxy.override_header: `override_header` is now the `override` section, off unless it says who may force a side: override: { header: x-canary, trusted_networks: ["10.0.0.0/8"] }"#]].assert_eq(
        &with_proxy("  override_header: x-canary\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:23: proxy.stickiness.mode: unknown variant `sticky`, expected one of `cookie`, `header`, `none`"#]]
        .assert_eq(&with_proxy("  stickiness: { mode: sticky }\n").unwrap_err().to_string());
}

#[test]
fn zero_or_tiny_client_timeouts_are_refused_with_the_field() {
    let with_proxy = |proxy: &str| Config::from_yaml(&format!("proxy:\n{proxy}{SEED}"));
    expect![[r#"<config>:2:26: proxy.client_header_timeout: "0s" is too short: a client needs at least 100ms to send a request (10s is usual)"#]].assert_eq(
        &with_proxy("  client_header_timeout: 0s\n")
            .unwrap_err()
            .to_string(),
    );
    expect![[r#"<config>:2:24: proxy.client_idle_timeout: "50ms" is too short: a client needs at least 100ms to send a request (10s is usual)"#]].assert_eq(
        &with_proxy("  client_idle_timeout: 50ms\n")
            .unwrap_err()
            .to_string(),
    );
    assert!(with_proxy("  client_idle_timeout: 100ms\n").is_ok());
}

#[test]
fn credentials_in_upstream_and_metrics_urls_are_refused_without_echoing_them() {
    let err = Config::from_yaml(&format!(
        "upstreams:\n  production: {{ url: \"http://produser:prodpass@127.0.0.1:9001\" }}\n{SEED}"
    ))
    .unwrap_err()
    .to_string();
    assert!(!err.contains("prodpass"), "{err}");
    expect!["<config>:2:22: upstreams.production.url: invalid URL http://…@127.0.0.1: credentials in the URL would be sent as part of the Host header and shown in logs; remove the `user:password@` part"].assert_eq(&err);
    let err = Config::from_yaml(&format!(
        "metrics:\n  prometheus: {{ url: \"http://u:secret@127.0.0.1:9090\" }}\n{SEED}"
    ))
    .unwrap_err()
    .to_string();
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn notification_urls_are_shown_without_userinfo_path_or_query() {
    let url = NotifyUrl::try_from(
        "https://hookuser:hookpass@hooks.example.com:8443/services/SECRET?k=v".to_owned(),
    )
    .unwrap();
    assert_eq!(url.redacted(), "https://hooks.example.com:8443/…");
    assert_eq!(
        format!("{url:?}"),
        "NotifyUrl(https://hooks.example.com:8443/…)"
    );
}

#[test]
fn a_deeply_nested_config_is_refused_quickly_with_a_place() {
    for (label, deep) in [
        (
            "block sequences",
            format!("bogus:\n  {}x\n", "- ".repeat(50_000)),
        ),
        (
            "flow sequences",
            format!("bogus: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "block mappings",
            (0..5_000)
                .map(|depth| format!("{}k{depth}:\n", " ".repeat(depth)))
                .collect(),
        ),
    ] {
        let err = Config::from_yaml(&format!("{SEED}{deep}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nested more than 32 levels deep"),
            "{label}: {err}"
        );
        assert!(err.starts_with("<config>:"), "{label}: {err}");
    }
    expect![
        "<config>:21:65: nested more than 32 levels deep; a canary config needs fewer than ten"
    ]
    .assert_eq(
        &Config::from_yaml(&format!("{SEED}bogus:\n  {}x\n", "- ".repeat(40)))
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn check_refuses_an_open_admin_address_without_logins_as_serve_does() {
    let open = format!("server:\n  admin_listen: \"0.0.0.0:8000\"\n{SEED}");
    expect!["<config>:2:17: server.admin_listen: 0.0.0.0:8000 is reachable from other machines, but there is no auth section: anyone who can reach it could start, stop or promote rollouts. Add an auth section with users or tokens (`canary hash-password`, `canary new-token`), or listen on 127.0.0.1"].assert_eq(&Config::from_yaml(&open).unwrap_err().to_string());
}

mod sections;
