//! The store against a real SQLite file: what is committed reads back, one
//! server per data directory, audit paging, per-second history, idempotency.

use canary_shared::{CanaryShare, Phase, UnixMillis};

use crate::adapters::store::{AuditEntry, AuditQuery, SqliteStore, StoreError};
use crate::domain::deployment::{AuditRecord, Deployment, NoDataAction, Rules};

fn rules() -> Rules {
    Rules {
        traffic_steps: vec![CanaryShare::from_percent(5.0).unwrap(), CanaryShare::FULL],
        auto_progression: true,
        wait_ms: 1000,
        auto_rollback: true,
        no_data_timeout_ms: 1000,
        on_long_no_data: NoDataAction::Hold,
        promotion: crate::domain::roles::Promotion::SwapRoles,
        undo_window_ms: 3_600_000,
        test_runs: Vec::new(),
        shadow: None,
    }
}

fn entry(actor: &str, action: &str) -> AuditEntry {
    AuditEntry {
        record: AuditRecord {
            at: UnixMillis(7),
            actor: actor.to_owned(),
            action: canary_shared::AuditAction::parse(action).expect("a known action"),
            from_phase: Phase::Idle,
            to_phase: Phase::BuildDeploy,
            from_share: CanaryShare::ZERO,
            to_share: CanaryShare::from_percent(5.0).unwrap(),
            reason: Some("because".to_owned()),
        },
        metrics: None,
        output: Some("exit 0".to_owned()),
    }
}

#[test]
fn what_is_committed_reads_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment {
        image_tag: Some("v2".to_owned()),
        ..Deployment::idle(&rules())
    };
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let stored = store
            .commit(
                &deployment,
                4,
                &[entry("ops", "start"), entry("controller", "deployed")],
                UnixMillis(9),
            )
            .unwrap();
        assert_eq!(
            stored.iter().map(|event| event.seq).collect::<Vec<_>>(),
            [1, 2]
        );
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let saved = store.load().unwrap().unwrap();
    assert_eq!(saved.deployment, deployment);
    assert_eq!(saved.revision, 4);
    let page = store
        .audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(page.events.len(), 2);
    assert_eq!(page.events[0].seq, 2, "newest first");
    assert_eq!(page.events[1].to_phase, Phase::BuildDeploy);
    assert_eq!(page.events[1].output.as_deref(), Some("exit 0"));
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SqliteStore::open(dir.path()).unwrap();
    let second = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(second, StoreError::Locked { .. }));
    assert!(
        second
            .to_string()
            .contains("another canary server is using the data directory"),
        "{second}"
    );
}

#[test]
fn the_audit_trail_pages_and_filters() {
    let store = SqliteStore::in_memory().unwrap();
    let deployment = Deployment::idle(&rules());
    for index in 0..25 {
        let actor = if index % 5 == 0 {
            "alice"
        } else {
            "controller"
        };
        store
            .commit(
                &deployment,
                index,
                &[entry(actor, "scale")],
                UnixMillis(index),
            )
            .unwrap();
    }
    let first = store
        .audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(first.events.first().unwrap().seq, 25);
    assert_eq!(first.next_before, Some(16));
    let second = store
        .audit(&AuditQuery {
            limit: 10,
            before: first.next_before,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(second.events.first().unwrap().seq, 15);
    let last = store
        .audit(&AuditQuery {
            limit: 10,
            before: Some(6),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(last.events.len(), 5);
    assert_eq!(last.next_before, None);
    let alice = store
        .audit(&AuditQuery {
            limit: 100,
            actor: Some("alice".to_owned()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(alice.events.len(), 5);
}

#[test]
fn seconds_are_kept_for_the_retention_and_read_back_in_order() {
    use canary_shared::{SecondSample, Side};
    let store = SqliteStore::in_memory().unwrap();
    let sample = |at: u64, requests| SecondSample {
        at: UnixMillis(at),
        requests,
        errors: 0,
        p50_latency_ms: Some(1.0),
        p95_latency_ms: None,
        p99_latency_ms: None,
    };
    for second in 0..10u64 {
        store
            .record_second(
                &sample(second * 1000, 100),
                &sample(second * 1000, second),
                UnixMillis(second.saturating_sub(4) * 1000),
            )
            .unwrap();
    }
    let canary = store.seconds(Side::Canary, UnixMillis(0), 100).unwrap();
    assert_eq!(
        canary
            .iter()
            .map(|sample| sample.requests)
            .collect::<Vec<_>>(),
        [5, 6, 7, 8, 9],
        "older seconds were forgotten"
    );
    assert_eq!(
        store
            .seconds(Side::Production, UnixMillis(8000), 100)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_idempotency_key_keeps_its_first_answer() {
    let store = SqliteStore::in_memory().unwrap();
    assert_eq!(store.idempotent_answer("k").unwrap(), None);
    store
        .remember_answer("k", 200, "first", UnixMillis(1))
        .unwrap();
    store
        .remember_answer("k", 409, "second", UnixMillis(2))
        .unwrap();
    assert_eq!(
        store.idempotent_answer("k").unwrap(),
        Some((200, "first".to_owned()))
    );
}
