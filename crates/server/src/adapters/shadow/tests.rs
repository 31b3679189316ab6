//! The tap's figures: a copy drawn at the share, refused beyond the queue,
//! counted by kind, examples without credentials, and each second's pairs.

use std::time::Duration;

use canary_shared::{CanaryShare, MismatchKind, UnixMillis};
use hyper::Method;
use hyper::header::{HeaderMap, HeaderValue};

use crate::adapters::recorder::{Outcome, TransportFailure};
use crate::adapters::shadow::{Pair, ShadowTap};
use crate::config::ShadowConfig;
use crate::domain::shadow::Match;

fn config(yaml: &str) -> ShadowConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn tap(yaml: &str) -> ShadowTap {
    let tap = ShadowTap::new(
        &config(yaml),
        std::sync::Arc::new(crate::adapters::clock::SystemClock),
    );
    tap.set_share(Some(CanaryShare::FULL));
    tap
}

fn pair<'a>(headers: &'a HeaderMap, canary: Outcome, found: Match) -> Pair<'a> {
    Pair {
        method: &Method::GET,
        path: "/orders/7?expand=items",
        headers,
        production: (200, Duration::from_millis(10)),
        canary: (canary, Duration::from_millis(12)),
        found,
    }
}

#[test]
fn only_the_configured_methods_and_bodies_under_the_cap_are_copied() {
    let tap = tap("share: 100\nmax_request_body: 10\n");
    assert!(tap.ticket(&Method::GET, None).is_some());
    assert!(tap.ticket(&Method::HEAD, Some(0)).is_some());
    assert!(
        tap.ticket(&Method::POST, Some(3)).is_none(),
        "POST is not copied by default"
    );
    let with_post = self::tap("share: 100\nmethods: [GET, POST]\nmax_request_body: 10\n");
    assert!(with_post.ticket(&Method::POST, Some(10)).is_some());
    assert!(with_post.ticket(&Method::POST, Some(11)).is_none());
    assert_eq!(with_post.report(false).skipped_large_body, 1);
}

#[test]
fn nothing_is_copied_outside_the_shadow_step() {
    let tap = tap("share: 100\n");
    tap.set_share(None);
    assert!(tap.ticket(&Method::GET, None).is_none());
    assert!(!tap.report(false).active);
    assert_eq!(
        tap.report(false).share,
        CanaryShare::FULL,
        "the step's share is still shown"
    );
}

#[test]
fn a_full_queue_drops_the_copy_and_counts_it() {
    let tap = tap("share: 100\nqueue: 2\n");
    let first = tap.ticket(&Method::GET, None);
    let second = tap.ticket(&Method::GET, None);
    assert!(first.is_some() && second.is_some());
    assert!(tap.ticket(&Method::GET, None).is_none());
    assert_eq!(tap.report(false).dropped, 1);
    drop(first);
    assert!(
        tap.ticket(&Method::GET, None).is_some(),
        "a finished copy frees its place"
    );
}

#[test]
fn the_share_is_drawn_per_request() {
    let tap = ShadowTap::new(
        &config("share: 5\n"),
        std::sync::Arc::new(crate::adapters::clock::SystemClock),
    );
    tap.set_share(Some(CanaryShare::from_percent(5.0).unwrap()));
    let copied = (0..20_000)
        .filter(|_| tap.ticket(&Method::GET, None).is_some())
        .count();
    // 5 % of 20,000 is 1,000 with a standard deviation of about 31.
    assert!((850..1150).contains(&copied), "{copied}");
}

#[test]
fn mismatches_are_counted_by_kind_and_examples_keep_no_credentials() {
    let tap = tap("share: 100\nredact_headers: [X-Api-Key]\n");
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer s3cret-token"),
    );
    headers.insert("cookie", HeaderValue::from_static("session=s3cret-cookie"));
    headers.insert("x-api-key", HeaderValue::from_static("s3cret-key"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    tap.mirrored();
    tap.finished(pair(&headers, Outcome::Status(200), Match::Same));
    tap.mirrored();
    tap.finished(pair(
        &headers,
        Outcome::Status(500),
        Match::Differs {
            kind: MismatchKind::Status,
            detail: "production answered 200, the canary 500".to_owned(),
        },
    ));
    tap.mirrored();
    tap.finished(pair(
        &headers,
        Outcome::Transport(TransportFailure::Timeout),
        Match::Differs {
            kind: MismatchKind::Failed,
            detail: "timed out".to_owned(),
        },
    ));
    tap.tick(UnixMillis(1_000));
    let report = tap.report(true);
    assert_eq!((report.mirrored, report.compared), (3, 3));
    assert_eq!((report.mismatches.status, report.mismatches.failed), (1, 1));
    assert_eq!(report.mismatch_rate, Some(2.0 / 3.0));
    assert_eq!(report.examples.len(), 2);
    let newest = &report.examples[0];
    assert_eq!(
        (newest.kind, newest.canary_status),
        (MismatchKind::Failed, None)
    );
    assert_eq!(report.examples[1].canary_status, Some(500));
    assert_eq!(
        newest.headers,
        [("accept".to_owned(), "application/json".to_owned())]
    );
    assert_eq!(newest.redacted, ["authorization", "cookie", "x-api-key"]);
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert_eq!(report.series.len(), 1);
    assert_eq!(
        (report.series[0].compared, report.series[0].mismatches),
        (3, 2)
    );
}

#[test]
fn each_second_gives_the_judge_its_pairs_and_both_sides_answers() {
    let tap = tap("share: 100\n");
    let headers = HeaderMap::new();
    for _ in 0..4 {
        tap.finished(pair(&headers, Outcome::Status(200), Match::Same));
    }
    tap.finished(pair(
        &headers,
        Outcome::Status(503),
        Match::Differs {
            kind: MismatchKind::Status,
            detail: String::new(),
        },
    ));
    let second = tap.tick(UnixMillis(0));
    assert_eq!((second.canary_requests, second.production_requests), (5, 5));
    assert_eq!((second.canary_failures, second.production_failures), (1, 0));
    assert_eq!(second.comparisons.len(), 5);
    assert!(
        second
            .comparisons
            .iter()
            .all(|pair| pair.slower == 1.0 && pair.count == 1),
        "12 ms against 10 ms"
    );
    assert!(
        tap.tick(UnixMillis(1_000)).comparisons.is_empty(),
        "a second's pairs are its own"
    );
}

#[test]
fn a_new_shadow_step_starts_from_empty_figures() {
    let tap = tap("share: 100\n");
    tap.mirrored();
    tap.finished(pair(&HeaderMap::new(), Outcome::Status(200), Match::Same));
    tap.tick(UnixMillis(0));
    tap.set_share(None);
    assert_eq!(
        tap.report(false).compared,
        1,
        "kept for the console after the step"
    );
    tap.set_share(Some(CanaryShare::FULL));
    let report = tap.report(true);
    assert_eq!(
        (report.mirrored, report.compared, report.series.len()),
        (0, 0, 0)
    );
    assert_eq!(report.canary.requests, 0);
}
