//! Tick-by-tick tests of sessions, the login throttle and the denial pacer.

use std::net::IpAddr;

use canary_shared::Role;

use crate::domain::access::{
    DenialPacer, FREE_LOGIN_FAILURES, LoginThrottle, SessionRefused, Sessions,
};

const MINUTE: u64 = 60_000;

fn sessions() -> Sessions {
    // 30 min idle, 12 h absolute, like the defaults.
    Sessions::new(30 * MINUTE, 12 * 60 * MINUTE)
}

#[test]
fn a_session_in_use_lives_until_its_absolute_timeout() {
    let mut sessions = sessions();
    sessions.create("s1".into(), "h1".into(), "alice", Role::Operator, 0);
    let mut now = 0;
    while now < 12 * 60 * MINUTE - 20 * MINUTE {
        now += 20 * MINUTE;
        let session = sessions.check("s1", now).expect("used every 20 min");
        assert_eq!(
            (session.user.as_str(), session.role),
            ("alice", Role::Operator)
        );
    }
    assert_eq!(
        sessions.check("s1", 12 * 60 * MINUTE),
        Err(SessionRefused::Expired)
    );
    assert_eq!(
        sessions.check("s1", 12 * 60 * MINUTE + 1),
        Err(SessionRefused::Unknown),
        "an ended session is forgotten"
    );
}

#[test]
fn an_unused_session_ends_after_the_idle_timeout() {
    let mut sessions = sessions();
    sessions.create("s1".into(), "h1".into(), "alice", Role::Viewer, 0);
    assert!(sessions.check("s1", 29 * MINUTE).is_ok());
    assert_eq!(sessions.peek("s1", 59 * MINUTE), Err(SessionRefused::Idle));
    assert_eq!(sessions.check("s1", 59 * MINUTE), Err(SessionRefused::Idle));
}

#[test]
fn logout_and_revocation_end_only_their_session() {
    let mut sessions = sessions();
    sessions.create("s1".into(), "h1".into(), "alice", Role::Operator, 0);
    sessions.create("s2".into(), "h2".into(), "bob", Role::Viewer, 1);
    sessions.create("s3".into(), "h3".into(), "carol", Role::Admin, 2);
    assert_eq!(sessions.end("s1").map(|s| s.user), Some("alice".to_owned()));
    assert_eq!(
        sessions.revoke("h2").map(|(_, s)| s.user),
        Some("bob".to_owned())
    );
    assert_eq!(sessions.revoke("h2"), None);
    assert_eq!(sessions.check("s1", 3), Err(SessionRefused::Unknown));
    assert_eq!(sessions.check("s2", 3), Err(SessionRefused::Unknown));
    assert!(sessions.check("s3", 3).is_ok());
    let users: Vec<String> = sessions.list(3).into_iter().map(|s| s.user).collect();
    assert_eq!(users, ["carol"]);
}

#[test]
fn a_saved_session_comes_back_only_while_it_would_still_be_live() {
    let mut before = sessions();
    before.create("k1".into(), "h1".into(), "alice", Role::Operator, 0);
    before.create("k2".into(), "h2".into(), "bob", Role::Viewer, 0);
    let _ = before.check("k1", 20 * MINUTE);
    let saved = before.list(20 * MINUTE);
    // The server comes back 25 minutes after the last use of alice's, and
    // 45 after bob's login: his has been idle too long by then.
    let mut after = sessions();
    let restored: Vec<bool> = ["k1", "k2"]
        .into_iter()
        .zip(saved)
        .map(|(key, session)| after.restore(key.into(), session, 45 * MINUTE))
        .collect();
    assert_eq!(restored, [true, false]);
    assert!(after.check("k1", 45 * MINUTE).is_ok());
    assert_eq!(after.check("k2", 45 * MINUTE), Err(SessionRefused::Unknown));
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn failed_logins_lock_a_source_out_for_doubling_times() {
    let mut throttle = LoginThrottle::default();
    let attacker = ip("192.0.2.7");
    let now = 1_000_000;
    for _ in 0..FREE_LOGIN_FAILURES {
        assert_eq!(throttle.check(attacker, now), Ok(()));
        throttle.failed(attacker, now);
    }
    assert_eq!(throttle.check(attacker, now), Ok(()), "five tries are free");
    throttle.failed(attacker, now);
    assert_eq!(throttle.check(attacker, now), Err(1000));
    throttle.failed(attacker, now + 1000);
    assert_eq!(throttle.check(attacker, now + 1000), Err(2000));
    throttle.failed(attacker, now + 3000);
    assert_eq!(throttle.check(attacker, now + 3000), Err(4000));
    assert_eq!(
        throttle.check(ip("192.0.2.8"), now),
        Ok(()),
        "other sources are not affected"
    );
    for step in 0..40 {
        throttle.failed(attacker, now + 4000 + step);
    }
    assert_eq!(
        throttle.check(attacker, now + 4039),
        Err(15 * MINUTE),
        "the lockout stops growing at 15 minutes"
    );
    throttle.succeeded(attacker);
    assert_eq!(throttle.check(attacker, now + 4039), Ok(()));
}

#[test]
fn old_failures_are_forgotten() {
    let mut throttle = LoginThrottle::default();
    let source = ip("2001:db8::1");
    for _ in 0..FREE_LOGIN_FAILURES {
        throttle.failed(source, 0);
    }
    throttle.failed(source, 16 * MINUTE);
    assert_eq!(throttle.check(source, 16 * MINUTE), Ok(()));
}

#[test]
fn denials_reach_the_trail_once_a_minute_per_source_with_a_count() {
    let mut pacer = DenialPacer::default();
    let source = ip("198.51.100.1");
    assert_eq!(pacer.admit(source, 0), Some(0));
    assert_eq!(pacer.admit(source, 1), None);
    assert_eq!(pacer.admit(source, 59_999), None);
    assert_eq!(pacer.admit(ip("198.51.100.2"), 10), Some(0));
    assert_eq!(pacer.admit(source, 60_000), Some(2));
    assert_eq!(pacer.admit(source, 60_001), None);
}
