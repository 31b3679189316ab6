//! Comparing a canary's answers with production's, case by case.

use canary_shared::MismatchKind;

use crate::domain::shadow::{
    Answer, BodyRule, JsonPointer, Match, compare, mismatch_metric, paired,
};

fn answer(status: u16, body: &str) -> Answer<'_> {
    Answer {
        status,
        body: Some(body.as_bytes()),
    }
}

fn json(ignored: &[&str]) -> BodyRule {
    BodyRule::Json {
        ignored: ignored
            .iter()
            .map(|pointer| JsonPointer::parse(pointer).unwrap())
            .collect(),
    }
}

fn kind(found: &Match) -> Option<MismatchKind> {
    match found {
        Match::Same => None,
        Match::Differs { kind, .. } => Some(*kind),
    }
}

fn detail(found: Match) -> String {
    match found {
        Match::Same => panic!("expected a difference"),
        Match::Differs { detail, .. } => detail,
    }
}

#[test]
fn the_status_class_is_compared_and_not_the_exact_status() {
    let rule = BodyRule::Ignore;
    assert_eq!(
        compare(answer(200, ""), Ok(answer(204, "")), &rule),
        Match::Same
    );
    let found = compare(answer(200, ""), Ok(answer(503, "")), &rule);
    assert_eq!(kind(&found), Some(MismatchKind::Status));
    assert_eq!(detail(found), "production answered 200, the canary 503");
    assert_eq!(
        kind(&compare(answer(404, ""), Ok(answer(200, "")), &rule)),
        Some(MismatchKind::Status)
    );
}

#[test]
fn no_answer_from_the_canary_is_a_failure_with_its_reason() {
    let found = compare(
        answer(200, "ok"),
        Err("timed out after 5 s".to_owned()),
        &BodyRule::Exact,
    );
    assert_eq!(kind(&found), Some(MismatchKind::Failed));
    assert_eq!(detail(found), "timed out after 5 s");
}

#[test]
fn bodies_count_only_when_a_rule_compares_them() {
    assert_eq!(
        compare(answer(200, "a"), Ok(answer(200, "b")), &BodyRule::Ignore),
        Match::Same
    );
    let found = compare(
        answer(200, "{\"price\": 10}"),
        Ok(answer(200, "{\"price\": 11}")),
        &BodyRule::Exact,
    );
    assert_eq!(kind(&found), Some(MismatchKind::Body));
    assert_eq!(
        detail(found),
        r#"bodies differ at byte 11 (13 and 13 bytes): production "{"price": 10}", canary "{"price": 11}""#
    );
}

#[test]
fn a_body_too_large_to_keep_is_compared_by_status_only() {
    let big = Answer {
        status: 200,
        body: None,
    };
    assert_eq!(
        compare(big, Ok(answer(200, "x")), &BodyRule::Exact),
        Match::Same
    );
}

#[test]
fn json_bodies_are_compared_as_values_without_the_ignored_fields() {
    let production = r#"{"id": "a1", "items": [{"n": 1, "at": 5}, {"n": 2, "at": 6}], "total": 3}"#;
    let canary = r#"{"total": 3.0, "items": [{"at": 9, "n": 1}, {"n": 2, "at": 7}], "id": "b2"}"#;
    let rule = json(&["/id", "/items/0/at", "/items/1/at"]);
    assert_eq!(
        compare(answer(200, production), Ok(answer(200, canary)), &rule),
        Match::Same
    );
    let found = compare(
        answer(200, production),
        Ok(answer(200, canary)),
        &json(&["/id"]),
    );
    assert_eq!(detail(found), "at /items/0/at: production 5, canary 9");
}

#[test]
fn json_differences_name_the_first_field_that_differs() {
    let rule = json(&[]);
    let cases = [
        (
            r#"{"a": {"b": true}}"#,
            r#"{"a": {"b": false}}"#,
            "at /a/b: production true, canary false",
        ),
        (
            r#"{"a": 1}"#,
            r#"{"a": 1, "extra": 2}"#,
            "at /extra: only in the canary's answer",
        ),
        (
            r#"{"a": 1, "b": 2}"#,
            r#"{"a": 1}"#,
            "at /b: missing from the canary's answer",
        ),
        (
            r#"[1, 2]"#,
            r#"[1, 2, 3]"#,
            "at /: 2 items in production's answer, 3 in the canary's",
        ),
        (
            r#"{"a/b": 1}"#,
            r#"{"a/b": 2}"#,
            "at /a~1b: production 1, canary 2",
        ),
    ];
    for (production, canary, expected) in cases {
        let found = compare(answer(200, production), Ok(answer(200, canary)), &rule);
        assert_eq!(detail(found), expected, "{production} against {canary}");
    }
}

#[test]
fn garbage_from_the_canary_is_a_body_mismatch_quoted_readably() {
    let got = Answer {
        status: 200,
        body: Some(b"\x00\xff{\"ok\"\n"),
    };
    let found = compare(answer(200, r#"{"ok": true}"#), Ok(got), &json(&[]));
    assert_eq!(kind(&found), Some(MismatchKind::Body));
    let detail = detail(found);
    assert!(
        detail.starts_with("the canary's body is not JSON ("),
        "{detail}"
    );
    assert!(detail.ends_with(r#"): "\u{0}\xff{"ok"\n""#), "{detail}");
}

#[test]
fn a_production_body_that_is_not_json_is_compared_byte_for_byte() {
    let rule = json(&["/id"]);
    assert_eq!(
        compare(answer(200, "plain"), Ok(answer(200, "plain")), &rule),
        Match::Same
    );
    assert_eq!(
        kind(&compare(
            answer(200, "plain"),
            Ok(answer(200, "plane")),
            &rule
        )),
        Some(MismatchKind::Body)
    );
}

#[test]
fn long_bodies_are_quoted_around_where_they_part() {
    let production = format!("{}A{}", "x".repeat(100), "y".repeat(100));
    let canary = format!("{}B{}", "x".repeat(100), "y".repeat(100));
    let found = detail(compare(
        answer(200, &production),
        Ok(answer(200, &canary)),
        &BodyRule::Exact,
    ));
    assert!(
        found.starts_with(
            "bodies differ at byte 100 (201 and 201 bytes): production \"…xxxxxxxxxxxxxxxxxxxxA"
        ),
        "{found}"
    );
    assert!(found.chars().count() < 200, "{found}");
}

#[test]
fn json_pointers_are_checked_as_written() {
    assert_eq!(
        JsonPointer::parse("/a~1b/~0c").unwrap().tokens,
        ["a/b", "~c"]
    );
    assert!(JsonPointer::parse("").is_err());
    assert!(
        JsonPointer::parse("meta/id")
            .unwrap_err()
            .contains("starts with `/`")
    );
    assert!(JsonPointer::parse("/a~2").unwrap_err().contains("`~0`"));
}

#[test]
fn a_pair_compares_the_same_request_on_both_sides() {
    assert_eq!(paired(12.0, 10.0).slower, 1.0);
    assert_eq!(paired(8.0, 10.0).slower, 0.0);
    assert_eq!(paired(10.0, 10.0).slower, 0.5);
    assert_eq!(paired(10.0, 10.0).count, 1);
}

#[test]
fn the_mismatch_rate_needs_enough_compared_requests() {
    let few = mismatch_metric(5, 5, 60, 20);
    assert_eq!(few.value, None);
    assert_eq!(
        few.reason.as_deref(),
        Some("5 shadow requests compared in the last 60 s, 20 needed to judge")
    );
    assert_eq!(mismatch_metric(40, 2, 60, 20).value, Some(0.05));
}

proptest::proptest! {
    /// Any bytes from either side, under any rule, are compared without a
    /// panic; identical answers always match.
    #[test]
    fn any_bodies_are_compared_without_a_panic(
        production in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        canary in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        json_like in proptest::bool::ANY,
    ) {
        let wrap = |bytes: &[u8]| -> Vec<u8> {
            if json_like {
                let mut wrapped = b"{\"a\":[".to_vec();
                wrapped.extend_from_slice(bytes);
                wrapped.extend_from_slice(b"]}");
                wrapped
            } else {
                bytes.to_vec()
            }
        };
        let (production, canary) = (wrap(&production), wrap(&canary));
        for rule in [BodyRule::Ignore, BodyRule::Exact, json(&["/a/0", "/b"])] {
            let (expected, got) = (
                Answer { status: 200, body: Some(&production) },
                Answer { status: 200, body: Some(&canary) },
            );
            let _ = compare(expected, Ok(got), &rule);
            proptest::prop_assert_eq!(compare(expected, Ok(expected), &rule), Match::Same);
        }
    }
}
