//! Tick-by-tick tests of sessions, the login throttle and the denial pacer.

use std::net::IpAddr;

use canary_shared::Role;

use crate::domain::access::{
    DenialPacer, FREE_LOGIN_FAILURES, FREE_SOURCE_FAILURES, LoginThrottle, SessionRefused,
    Sessions, printable,
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

/// A failed attempt, as the login handler makes it.
fn fail(throttle: &mut LoginThrottle, source: IpAddr, user: &str, now: u64) -> Result<(), u64> {
    throttle.begin(source, user, now)
}

#[test]
fn failed_logins_lock_a_name_at_a_source_out_for_doubling_times() {
    let mut throttle = LoginThrottle::default();
    let attacker = ip("192.0.2.7");
    let now = 1_000_000;
    for _ in 0..FREE_LOGIN_FAILURES {
        assert_eq!(fail(&mut throttle, attacker, "olga", now), Ok(()));
    }
    assert_eq!(
        fail(&mut throttle, attacker, "olga", now),
        Ok(()),
        "five failures are free; the sixth attempt is still verified"
    );
    assert_eq!(fail(&mut throttle, attacker, "olga", now), Err(1000));
    assert_eq!(fail(&mut throttle, attacker, "olga", now + 1000), Ok(()));
    assert_eq!(fail(&mut throttle, attacker, "olga", now + 1000), Err(2000));
    assert_eq!(fail(&mut throttle, attacker, "olga", now + 3000), Ok(()));
    assert_eq!(fail(&mut throttle, attacker, "olga", now + 3000), Err(4000));
    assert_eq!(
        fail(&mut throttle, ip("192.0.2.8"), "olga", now),
        Ok(()),
        "other sources are not affected"
    );
    assert_eq!(
        fail(&mut throttle, attacker, "vera", now + 3000),
        Ok(()),
        "other names from the same source have their own count"
    );
    // Trying again the moment each lockout ends: the lockouts double up to 15 minutes.
    let mut at = now + 7000;
    let mut longest_wait = 0;
    for _ in 0..60 {
        if let Err(wait) = fail(&mut throttle, attacker, "olga", at) {
            longest_wait = longest_wait.max(wait);
            at += wait;
        }
    }
    assert_eq!(
        longest_wait,
        15 * MINUTE,
        "the lockout stops growing at 15 minutes"
    );
}

#[test]
fn concurrent_attempts_are_counted_before_any_is_verified() {
    // Forty guesses arrive together: each is counted as it starts, so only
    // the free ones (and the one that trips the lockout) go on to argon2.
    let mut throttle = LoginThrottle::default();
    let attacker = ip("192.0.2.9");
    let admitted = (0..40)
        .filter(|_| throttle.begin(attacker, "olga", 0).is_ok())
        .count();
    assert_eq!(admitted, FREE_LOGIN_FAILURES as usize + 1);
}

#[test]
fn a_success_clears_only_its_own_name() {
    // Five wrong guesses at olga, then a correct viewer login, three times:
    // the viewer's success must not buy more guesses at olga.
    let mut throttle = LoginThrottle::default();
    let source = ip("192.0.2.10");
    let mut refused = 0;
    for cycle in 0..3 {
        for guess in 0..5 {
            refused +=
                usize::from(fail(&mut throttle, source, "olga", cycle * 10 + guess).is_err());
        }
        throttle.begin(source, "vera", cycle * 10 + 5).unwrap();
        throttle.succeeded(source, "vera");
    }
    assert!(refused >= 8, "only {refused} of 15 guesses at olga refused");

    // A success clears its own name's count.
    let mut throttle = LoginThrottle::default();
    for _ in 0..FREE_LOGIN_FAILURES {
        fail(&mut throttle, source, "olga", 0).unwrap();
    }
    throttle.begin(source, "olga", 0).unwrap();
    throttle.succeeded(source, "olga");
    for _ in 0..FREE_LOGIN_FAILURES {
        assert_eq!(fail(&mut throttle, source, "olga", 0), Ok(()));
    }
}

#[test]
fn a_source_guessing_many_names_is_locked_out_as_a_whole() {
    let mut throttle = LoginThrottle::default();
    let source = ip("192.0.2.11");
    let admitted = (0..100)
        .filter(|index| throttle.begin(source, &format!("user{index}"), 0).is_ok())
        .count();
    assert_eq!(admitted, FREE_SOURCE_FAILURES as usize + 1);
    assert!(throttle.begin(ip("192.0.2.12"), "user1", 0).is_ok());
}

#[test]
fn old_failures_are_forgotten() {
    let mut throttle = LoginThrottle::default();
    let source = ip("2001:db8::1");
    for _ in 0..=FREE_LOGIN_FAILURES {
        fail(&mut throttle, source, "olga", 0).unwrap();
    }
    assert_eq!(fail(&mut throttle, source, "olga", 16 * MINUTE), Ok(()));
}

#[test]
fn client_strings_are_made_printable_and_bounded() {
    assert_eq!(
        printable(
            "x\n2026-01-01T00:00:00Z  INFO canary: FORGED\u{1b}[31m",
            100
        ),
        "x\\n2026-01-01T00:00:00Z  INFO canary: FORGED\\u{1b}[31m"
    );
    assert_eq!(printable("olga", 64), "olga");
    assert_eq!(printable(&"a".repeat(1000), 5), "aaaaa…");
    assert_eq!(printable("Zoë ✓", 64), "Zoë ✓", "letters beyond ASCII stay");
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

#[test]
fn the_highest_role_among_a_persons_groups_applies_and_others_are_refused_or_defaulted() {
    use canary_shared::Role;

    use crate::domain::access::GroupRoles;
    let mut roles = GroupRoles {
        by_role: vec![
            (Role::Admin, vec!["canary-admins".to_owned()]),
            (Role::Operator, vec!["sre".to_owned(), "release".to_owned()]),
            (Role::Viewer, vec!["engineering".to_owned()]),
        ],
        unmapped: None,
    };
    assert_eq!(
        roles.role_for(["engineering", " sre "]),
        Some(Role::Operator)
    );
    assert_eq!(
        roles.role_for(["canary-admins", "engineering"]),
        Some(Role::Admin)
    );
    assert_eq!(roles.role_for(["marketing"]), None, "refused");
    assert_eq!(roles.role_for(["SRE"]), None, "group names are exact");
    assert_eq!(roles.role_for([""]), None);
    roles.unmapped = Some(Role::Viewer);
    assert_eq!(roles.role_for(["marketing"]), Some(Role::Viewer));
}
