//! The text format as real exporters write it, and as ours writes it.

use proptest::prelude::*;

use crate::domain::exposition::{MetricType, Writer, parse};

/// What a Go service's client library writes, with the format's corner cases.
const REAL: &str = r#"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.5"} 0.000212
go_gc_duration_seconds{quantile="1"} 0.018157
go_gc_duration_seconds_sum 0.7461
go_gc_duration_seconds_count 1532
# HELP http_request_duration_seconds Request latency.\nIn seconds; "quoted" and \\ backslashed.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{handler="/api/items,search",le="0.05"} 24054
http_request_duration_seconds_bucket{handler="/api/items,search",le="0.1"} 33444
http_request_duration_seconds_bucket{handler="/api/items,search",le="+Inf"} 144320
http_request_duration_seconds_sum{handler="/api/items,search"} 53423
http_request_duration_seconds_count{handler="/api/items,search"} 144320
# A comment that is neither HELP nor TYPE.
# TYPE sandbox_executions_total counter
sandbox_executions_total{kind="say \"hi\"\n",path="C:\\tmp"} 1027 1395066363000
sandbox_executions_total { kind = "x" , } 3
memory_query_latency_ms 41.5
	indented_gauge   -Inf
not_a_number NaN
"#;

#[test]
fn real_exposition_text_is_read_with_types_help_and_escapes() {
    let exposition = parse(REAL).unwrap();
    assert_eq!(exposition.samples.len(), 15);
    assert_eq!(
        exposition.type_of("go_gc_duration_seconds"),
        MetricType::Summary
    );
    assert_eq!(
        exposition.type_of("http_request_duration_seconds"),
        MetricType::Histogram
    );
    assert_eq!(
        exposition.type_of("sandbox_executions_total"),
        MetricType::Counter
    );
    assert_eq!(
        exposition.type_of("memory_query_latency_ms"),
        MetricType::Untyped
    );
    assert_eq!(
        exposition.help["http_request_duration_seconds"],
        "Request latency.\nIn seconds; \"quoted\" and \\ backslashed."
    );
    let bucket = &exposition.samples[5];
    assert_eq!(
        bucket.label("handler"),
        Some("/api/items,search"),
        "a comma inside a value"
    );
    assert_eq!(bucket.label("le"), Some("0.05"));
    let counter = &exposition.samples[10];
    assert_eq!(counter.label("kind"), Some("say \"hi\"\n"));
    assert_eq!(counter.label("path"), Some("C:\\tmp"));
    assert_eq!(counter.timestamp_ms, Some(1_395_066_363_000));
    assert_eq!(
        exposition.samples[11].label("kind"),
        Some("x"),
        "spaces and a trailing comma"
    );
    assert_eq!(exposition.samples[13].value, f64::NEG_INFINITY);
    assert!(exposition.samples[14].value.is_nan());
    assert_eq!(exposition.samples[7].value, f64::INFINITY.min(144_320.0));
}

#[test]
fn a_malformed_line_fails_the_whole_text_with_its_line_number() {
    for (text, expected) in [
        (
            "ok 1\n<html>oops</html>\n",
            "line 2: expected a metric name at \"<html>oops</html>\"",
        ),
        ("a{b=\"c} 1\n", "line 1: unterminated value of label b"),
        (
            "a{b=c} 1\n",
            "line 1: expected `\"` to open the value of label b",
        ),
        (
            "a{b=\"\\t\"} 1\n",
            "line 1: unknown escape `\\t` in label b",
        ),
        ("a 1 2 3\n", "line 1: unexpected \"3\" after the value of a"),
        ("a one\n", "line 1: \"one\" is not a number"),
        ("a\n", "line 1: a has no value"),
        (
            "a 1 12.5\n",
            "line 1: \"12.5\" is not a timestamp in milliseconds",
        ),
    ] {
        assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text:?}");
    }
    assert_eq!(
        parse("").unwrap().samples,
        [],
        "an empty exposition is valid"
    );
}

#[test]
fn the_writer_escapes_what_the_parser_unescapes() {
    let mut writer = Writer::new();
    writer
        .metric(
            "canary_requests_total",
            MetricType::Counter,
            "Requests.\nBy side.",
        )
        .sample(
            "canary_requests_total",
            &[("side", "canary"), ("note", "a \"b\" \\ c\nd")],
            3.0,
        )
        .sample("canary_requests_total", &[], f64::INFINITY);
    let text = writer.finish();
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed.help["canary_requests_total"], "Requests.\nBy side.");
    assert_eq!(parsed.samples[0].label("note"), Some("a \"b\" \\ c\nd"));
    assert_eq!(parsed.samples[1].value, f64::INFINITY);
}

proptest! {
    #[test]
    fn anything_written_reads_back_the_same(
        name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        labels in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "\\PC{0,12}"), 0..4),
        value in proptest::num::f64::ANY,
    ) {
        let mut writer = Writer::new();
        let borrowed: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        writer.sample(&name, &borrowed, value);
        let parsed = parse(&writer.finish()).unwrap();
        prop_assert_eq!(parsed.samples.len(), 1);
        let sample = &parsed.samples[0];
        prop_assert_eq!(&sample.name, &name);
        let expected: Vec<(String, String)> = labels.clone();
        prop_assert_eq!(&sample.labels, &expected);
        prop_assert!(sample.value == value || (sample.value.is_nan() && value.is_nan()));
    }
}
