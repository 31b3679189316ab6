//! JSON snapshots of every wire type, so a protocol change is always deliberate.
//!
//! A failing snapshot means the JSON the server sends or the console reads has
//! changed shape. If that is intended, refresh with `UPDATE_EXPECT=1 cargo test`
//! and say so in the commit message.

use expect_test::{ExpectFile, expect_file};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    ActionKind, AlertLevel, ApiErrorBody, AuditEvent, AuditMetrics, AutoProgression, AutoRollback,
    BlockedAction, CanaryShare, CanaryState, CheckStatus, ClientMessage, Command, Comparator,
    CredentialKind, DeploymentStep, Health, LoginRequest, Me, MetricsSnapshot, Phase, Role,
    SafetyCheck, SecondSample, ServerMessage, ServiceHealth, Side, SideMetrics, StartRequest,
    StepKind, StepStatus, TrafficSplit, TransportErrors, UnixMillis, WindowStats,
};

fn share(percent: f64) -> CanaryShare {
    CanaryShare::from_percent(percent).unwrap()
}

/// Checks the pretty JSON of `value` against `expected` and that it reads back equal.
fn check<T>(value: &T, expected: ExpectFile)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string_pretty(value).unwrap();
    expected.assert_eq(&json);
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(
        &back, value,
        "the JSON does not read back to the same value"
    );
}

pub(crate) fn sample_state() -> CanaryState {
    let service = |side, version: &str, percent| ServiceHealth {
        side,
        version: Some(version.to_owned()),
        url: format!(
            "http://127.0.0.1:900{}",
            if side == Side::Production { 1 } else { 2 }
        ),
        health: Health::Healthy,
        health_detail: Some("HTTP 200 from /healthz".to_owned()),
        traffic_percent: share(percent),
        request_count: 1200,
        avg_latency_ms: Some(41.5),
        p50_latency_ms: Some(38.0),
        p95_latency_ms: Some(90.25),
        p99_latency_ms: Some(140.0),
        success_rate: Some(0.995),
        error_rate: Some(0.005),
        custom_metrics: vec![crate::CustomValue {
            name: "memory_query_latency_ms".to_owned(),
            value: Some(41.5),
            reason: None,
        }],
    };
    CanaryState {
        revision: 7,
        phase: Phase::Progressing,
        summary: "Canary at 25 %, step 4 of 6".to_owned(),
        image_tag: Some("v2.7.0".to_owned()),
        traffic: TrafficSplit::with_canary(share(25.0)),
        production: service(Side::Production, "v2.6.0", 75.0),
        canary: service(Side::Canary, "v2.7.0", 25.0),
        safety_checks: vec![SafetyCheck {
            name: "Total Latency".to_owned(),
            metric: "p95_latency_ms".to_owned(),
            comparator: Comparator::Max,
            threshold: 1000.0,
            alert_level: AlertLevel::Critical,
            current_value: Some(90.25),
            status: CheckStatus::Safe,
            reason: None,
        }],
        steps: vec![
            DeploymentStep {
                kind: StepKind::BuildDeploy,
                status: StepStatus::Complete,
                started_at: Some(UnixMillis(1_700_000_000_000)),
                ended_at: Some(UnixMillis(1_700_000_030_000)),
                name: None,
                detail: None,
            },
            DeploymentStep {
                kind: StepKind::TestRun { index: 0 },
                status: StepStatus::Complete,
                started_at: Some(UnixMillis(1_700_000_030_000)),
                ended_at: Some(UnixMillis(1_700_000_055_000)),
                name: Some("smoke".to_owned()),
                detail: Some("exit 0: 42 passed".to_owned()),
            },
            DeploymentStep {
                kind: StepKind::Shadow {
                    percent: share(5.0),
                },
                status: StepStatus::Complete,
                started_at: Some(UnixMillis(1_700_000_055_000)),
                ended_at: Some(UnixMillis(1_700_000_175_000)),
                name: None,
                detail: None,
            },
            DeploymentStep {
                kind: StepKind::Traffic {
                    percent: share(25.0),
                },
                status: StepStatus::InProgress,
                started_at: Some(UnixMillis(1_700_000_060_000)),
                ended_at: None,
                name: None,
                detail: None,
            },
            DeploymentStep::pending(StepKind::Promoted),
        ],
        auto_progression: AutoProgression {
            enabled: true,
            as_configured: true,
            wait_ms: 86_400_000,
            green_for_ms: 600_000,
        },
        auto_rollback: AutoRollback { armed: true },
        allowed_actions: vec![ActionKind::Scale, ActionKind::Stop],
        blocked_actions: vec![BlockedAction {
            action: ActionKind::Start,
            reason: "a canary is already running".to_owned(),
        }],
        judge: vec![crate::JudgedMetric {
            metric: "failure_rate".to_owned(),
            conclusion: crate::JudgeConclusion::Inconclusive,
            words: "failure rate: not decided yet".to_owned(),
            worse_evidence: 1.5,
            within_evidence: 0.8,
            samples: 12,
            fail_at: 200.0,
            pass_at: 100.0,
            history: vec![
                crate::EvidencePoint {
                    secs: 1,
                    worse: 1.2,
                    within: 0.9,
                },
                crate::EvidencePoint {
                    secs: 2,
                    worse: 1.5,
                    within: 0.8,
                },
            ],
        }],
        router: crate::RouterStatus {
            kind: "haproxy".to_owned(),
            about: "Changes by the Runtime API. Shares: every whole percent exact.".to_owned(),
            effective_percent: share(25.0),
            confirmed: false,
            detail: Some("127.0.0.1:9999: cannot reach the stats socket".to_owned()),
            measurement: None,
            instances: vec![
                crate::RouterInstance {
                    name: "/run/haproxy/admin.sock".to_owned(),
                    canary_percent: Some(share(25.0)),
                    error: None,
                    waiting: None,
                },
                crate::RouterInstance {
                    name: "127.0.0.1:9999".to_owned(),
                    canary_percent: None,
                    error: Some("cannot reach the stats socket".to_owned()),
                    waiting: None,
                },
            ],
        },
        undo_promotion: None,
        updated_at: UnixMillis(1_700_000_090_000),
    }
}

fn sample_metrics() -> MetricsSnapshot {
    let window = WindowStats {
        window_secs: 60,
        requests: 600,
        requests_per_sec: 10.0,
        avg_latency_ms: Some(12.5),
        p50_latency_ms: Some(10.0),
        p95_latency_ms: Some(30.0),
        p99_latency_ms: Some(45.0),
        max_latency_ms: Some(80.0),
        success_rate: Some(0.99),
        error_rate: Some(0.01),
        errors_4xx: 2,
        errors_5xx: 3,
        grpc_failures: 4,
        transport_errors: TransportErrors {
            refused: 1,
            reset: 0,
            timeout: 2,
            overloaded: 0,
            other: 0,
        },
    };
    let side = SideMetrics {
        last_1m: window.clone(),
        last_5m: WindowStats {
            window_secs: 300,
            ..window
        },
        series: vec![SecondSample {
            at: UnixMillis(1_700_000_000_000),
            requests: 10,
            errors: 0,
            p50_latency_ms: Some(10.0),
            p95_latency_ms: Some(30.0),
            p99_latency_ms: None,
        }],
        custom: vec![crate::CustomMetric {
            name: "memory_query_latency_ms".to_owned(),
            value: Some(41.5),
            reason: None,
            at: Some(UnixMillis(1_700_000_000_000)),
            points: vec![crate::CustomPoint {
                at: UnixMillis(1_700_000_000_000),
                value: 41.5,
            }],
        }],
    };
    MetricsSnapshot {
        at: UnixMillis(1_700_000_001_000),
        canary_percent: share(5.0),
        production: side.clone(),
        canary: side,
        shadow: None,
    }
}

/// The shadow step's report as `GET /admin/canary/validation` sends it.
fn sample_shadow_report() -> crate::ShadowReport {
    let window = sample_metrics().canary.last_1m;
    crate::ShadowReport {
        active: true,
        share: share(5.0),
        mirrored: 1_204,
        compared: 1_200,
        dropped: 3,
        skipped_large_body: 1,
        unpaired: 4,
        mismatches: crate::MismatchCounts {
            status: 2,
            body: 30,
            failed: 1,
        },
        mismatch_rate: Some(0.0275),
        mirrored_per_sec: 20.1,
        canary: window.clone(),
        production: window,
        series: vec![crate::ShadowSecond {
            at: UnixMillis(1_700_000_000_000),
            compared: 20,
            mismatches: 1,
            canary_p95_ms: Some(31.0),
            production_p95_ms: Some(30.0),
        }],
        examples: vec![crate::MismatchExample {
            at: UnixMillis(1_700_000_000_500),
            method: "GET".to_owned(),
            path: "/api/orders/7?expand=items".to_owned(),
            headers: vec![("accept".to_owned(), "application/json".to_owned())],
            redacted: vec!["authorization".to_owned()],
            kind: crate::MismatchKind::Body,
            production_status: 200,
            canary_status: Some(200),
            detail: "at /total: production 42, canary 41".to_owned(),
        }],
    }
}

#[test]
fn shadow_report() {
    check(
        &sample_shadow_report(),
        expect_file!["snapshots/shadow_report.json"],
    );
}

#[test]
fn canary_state() {
    check(&sample_state(), expect_file!["snapshots/canary_state.json"]);
}

#[test]
fn promoted_state_with_an_undo_window() {
    let promoted = CanaryState {
        phase: Phase::Promoted,
        allowed_actions: vec![ActionKind::Start, ActionKind::UndoPromotion],
        blocked_actions: Vec::new(),
        judge: Vec::new(),
        undo_promotion: Some(crate::UndoWindow {
            standby_version: Some("v2.6.0".to_owned()),
            standby_url: "http://127.0.0.1:9001".to_owned(),
            left_ms: 3_540_000,
            window_ms: 3_600_000,
        }),
        ..sample_state()
    };
    check(
        &promoted,
        expect_file!["snapshots/canary_state_promoted.json"],
    );
}

#[test]
fn metrics_snapshot() {
    check(
        &sample_metrics(),
        expect_file!["snapshots/metrics_snapshot.json"],
    );
}

#[test]
fn commands() {
    let commands = vec![
        Command::Start(StartRequest {
            image_tag: "v2.7.0".to_owned(),
            traffic_percent: share(5.0),
        }),
        Command::Scale {
            percent: share(12.5),
        },
        Command::Continue,
        Command::Pause,
        Command::Resume,
        Command::Promote,
        Command::SetAutoProgression { enabled: false },
        Command::Rollback {
            reason: "p95 too high".to_owned(),
        },
        Command::Stop {
            reason: "pager went off".to_owned(),
        },
        Command::UndoPromotion {
            reason: "v2.7.0 leaks memory".to_owned(),
        },
    ];
    check(&commands, expect_file!["snapshots/commands.json"]);
}

fn sample_audit_event() -> AuditEvent {
    AuditEvent {
        seq: 3,
        at: UnixMillis(1_700_000_000_000),
        actor: "controller".to_owned(),
        action: "auto_rollback".to_owned(),
        from_phase: Phase::Progressing,
        to_phase: Phase::RollingBack,
        from_percent: share(25.0),
        to_percent: CanaryShare::ZERO,
        reason: Some("p95 latency 1,340 ms > 1,000 ms".to_owned()),
        metrics: Some(Box::new(AuditMetrics {
            production: sample_metrics().production.last_1m,
            canary: sample_metrics().canary.last_1m,
        })),
        output: Some("exit 0: rolled back v2.7.0".to_owned()),
    }
}

#[test]
fn audit_event() {
    check(
        &sample_audit_event(),
        expect_file!["snapshots/audit_event.json"],
    );
}

#[test]
fn api_error_body() {
    let body = ApiErrorBody {
        code: "invalid_field".to_owned(),
        message: "traffic_percent: a share must be between 0 and 100 percent, got 101".to_owned(),
        field: Some("traffic_percent".to_owned()),
    };
    check(&body, expect_file!["snapshots/api_error_body.json"]);
}

#[test]
fn server_messages() {
    let messages = vec![
        ServerMessage::State {
            state: Box::new(sample_state()),
        },
        ServerMessage::Metrics {
            metrics: Box::new(sample_metrics()),
        },
        ServerMessage::Audit {
            event: sample_audit_event(),
        },
        ServerMessage::Reply { id: 7, error: None },
        ServerMessage::Reply {
            id: 8,
            error: Some(ApiErrorBody {
                code: "forbidden".to_owned(),
                message: "this needs the operator role; viewer ann has viewer".to_owned(),
                field: None,
            }),
        },
    ];
    check(&messages, expect_file!["snapshots/server_messages.json"]);
    // The snapshot too, with and without metrics.
    for metrics in [None, Some(Box::new(sample_metrics()))] {
        let snapshot = ServerMessage::Snapshot {
            state: Box::new(sample_state()),
            metrics,
        };
        let json = serde_json::to_string(&snapshot).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&json).unwrap(),
            snapshot
        );
    }
}

#[test]
fn a_stream_message_reads_with_a_clear_error_when_it_is_not_one() {
    let read = |json: &str| {
        serde_json::from_str::<ServerMessage>(json)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        read(r#"{"type":"weather","id":1}"#),
        "unknown variant `weather`, expected one of `snapshot`, `state`, `metrics`, `audit`, `reply` at line 1 column 25"
    );
    assert_eq!(
        read(r#"{"type":"reply"}"#),
        "missing field `id` at line 1 column 16"
    );
    assert_eq!(
        read(r#"{"id":1,"type":"reply"}"#),
        "a stream message starts with \"type\" at line 1 column 5"
    );
    // Keys it does not know are skipped, as serde's derive does.
    assert_eq!(
        serde_json::from_str::<ServerMessage>(r#"{"type":"reply","id":3,"later":[1,{"a":2}]}"#)
            .unwrap(),
        ServerMessage::Reply { id: 3, error: None }
    );
}

#[test]
fn client_messages() {
    let messages = vec![
        ClientMessage::Command {
            id: 7,
            command: Command::Scale {
                percent: share(25.0),
            },
            expected_revision: Some(41),
        },
        ClientMessage::Command {
            id: 8,
            command: Command::Stop {
                reason: "errors in the logs".to_owned(),
            },
            expected_revision: None,
        },
    ];
    check(&messages, expect_file!["snapshots/client_messages.json"]);
}

#[test]
fn access_bodies() {
    let login = LoginRequest {
        user: "alice".to_owned(),
        password: "correct horse battery staple".to_owned(),
    };
    check(&login, expect_file!["snapshots/login_request.json"]);
    let me = Me {
        name: "alice".to_owned(),
        role: Role::Operator,
        kind: CredentialKind::Session,
        auth_enabled: true,
        sign_out_url: None,
        panel_url: None,
        panel_label: None,
    };
    check(&me, expect_file!["snapshots/me.json"]);
    let through_proxy = Me {
        kind: CredentialKind::Proxy,
        sign_out_url: Some("/oauth2/sign_out".to_owned()),
        panel_url: Some("https://panel.example.com/".to_owned()),
        panel_label: Some("Admin panel".to_owned()),
        ..me
    };
    check(&through_proxy, expect_file!["snapshots/me_proxy.json"]);
    let options = crate::auth::LoginOptions {
        single_sign_on: Some("Sign in with Example SSO".to_owned()),
        passwords: true,
    };
    check(&options, expect_file!["snapshots/login_options.json"]);
}

#[test]
fn start_request_defaults_to_five_percent_and_refuses_unknown_fields() {
    let request: StartRequest = serde_json::from_str(r#"{"image_tag":"v2"}"#).unwrap();
    assert_eq!(request.traffic_percent, share(5.0));
    let unknown = serde_json::from_str::<StartRequest>(r#"{"image_tag":"v2","percent":5}"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `percent`")
    );
}

#[test]
fn a_split_that_does_not_add_up_to_100_is_refused() {
    let json = r#"{"canary_percent":25,"production_percent":70}"#;
    assert!(serde_json::from_str::<TrafficSplit>(json).is_err());
    let json = r#"{"canary_percent":25,"production_percent":75}"#;
    let split: TrafficSplit = serde_json::from_str(json).unwrap();
    assert_eq!(split.production(), share(75.0));
}

#[test]
fn push_bodies() {
    use crate::audit::NotifyEvent;
    use crate::push::{PushDevice, PushKeys, PushOverview, PushSubscribe, PushTestResult};
    let overview = PushOverview {
        enabled: true,
        public_key: "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U".to_owned(),
        devices: vec![PushDevice {
            id: 3,
            user: "alice".to_owned(),
            label: "Chrome on Android".to_owned(),
            service: "fcm.googleapis.com".to_owned(),
            events: vec![NotifyEvent::Breach, NotifyEvent::RolledBack],
            created_at: UnixMillis(1_733_500_000_000),
            last_delivered_at: Some(UnixMillis(1_733_500_060_000)),
            last_error: None,
        }],
    };
    check(&overview, expect_file!["snapshots/push_overview.json"]);
    let subscribe: PushSubscribe = serde_json::from_str(
        r#"{"endpoint":"https://fcm.googleapis.com/fcm/send/abc","expirationTime":null,
            "keys":{"p256dh":"BNcR","auth":"tBHI"}}"#,
    )
    .unwrap();
    assert_eq!(
        subscribe,
        PushSubscribe {
            endpoint: "https://fcm.googleapis.com/fcm/send/abc".to_owned(),
            keys: PushKeys {
                p256dh: "BNcR".to_owned(),
                auth: "tBHI".to_owned(),
            },
            events: None,
            replaces: None,
        },
        "a browser's PushSubscription.toJSON() is read as it is"
    );
    check(&subscribe, expect_file!["snapshots/push_subscribe.json"]);
    let result = PushTestResult {
        delivered: false,
        detail: "push service answered 410: the subscription is gone; device removed".to_owned(),
    };
    check(&result, expect_file!["snapshots/push_test_result.json"]);
}
