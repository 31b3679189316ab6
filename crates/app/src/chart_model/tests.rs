//! The charts' data: the kept series, the lines, the axes and the comparison.

use canary_shared::{
    CanaryShare, MetricsSnapshot, SecondSample, SideMetrics, UnixMillis, WindowStats,
};

use super::{
    ChartKind, Percentile, WINDOW_SECS, axis_label, compare, evidence_plot, has_points,
    merge_metrics, parse_hex_color, plot_range, segments, time_label, y_range,
};

fn second(at_s: u64, requests: u64, errors: u64, p95: Option<f64>) -> SecondSample {
    SecondSample {
        at: UnixMillis(at_s * 1000),
        requests,
        errors,
        p50_latency_ms: p95.map(|ms| ms / 2.0),
        p95_latency_ms: p95,
        p99_latency_ms: p95.map(|ms| ms * 2.0),
    }
}

fn snapshot(
    at_s: u64,
    production: Vec<SecondSample>,
    canary: Vec<SecondSample>,
) -> MetricsSnapshot {
    MetricsSnapshot {
        at: UnixMillis(at_s * 1000),
        canary_percent: CanaryShare::from_percent(5.0).unwrap(),
        production: SideMetrics {
            series: production,
            ..SideMetrics::default()
        },
        canary: SideMetrics {
            series: canary,
            ..SideMetrics::default()
        },
        shadow: None,
    }
}

#[test]
fn updates_append_new_seconds_and_the_series_stays_within_five_minutes() {
    let mut kept = None;
    merge_metrics(
        &mut kept,
        snapshot(
            1000,
            vec![second(998, 5, 0, None), second(999, 6, 0, None)],
            vec![],
        ),
        true,
    );
    // An update repeats nothing the snapshot had; a repeated second is ignored.
    merge_metrics(
        &mut kept,
        snapshot(
            1001,
            vec![second(999, 6, 0, None), second(1000, 7, 0, None)],
            vec![second(1000, 1, 0, None)],
        ),
        false,
    );
    let kept_now = kept.as_ref().unwrap();
    let times: Vec<u64> = kept_now
        .production
        .series
        .iter()
        .map(|s| s.at.0 / 1000)
        .collect();
    assert_eq!(times, [998, 999, 1000]);
    assert_eq!(kept_now.canary.series.len(), 1);

    // Hours of updates later, only the last five minutes are kept.
    for at in 1001..5000 {
        merge_metrics(
            &mut kept,
            snapshot(at + 1, vec![second(at, 1, 0, None)], vec![]),
            false,
        );
    }
    let series = &kept.as_ref().unwrap().production.series;
    assert!(
        series.len() as u64 <= WINDOW_SECS + 1,
        "{} seconds kept",
        series.len()
    );
    assert_eq!(series.last().unwrap().at, UnixMillis(4999 * 1000));

    // A full snapshot after a reconnect replaces what was kept.
    merge_metrics(
        &mut kept,
        snapshot(9000, vec![second(8999, 3, 0, None)], vec![]),
        true,
    );
    assert_eq!(kept.unwrap().production.series.len(), 1);
}

#[test]
fn lines_break_where_a_second_had_no_traffic() {
    let series = [
        second(100, 10, 0, Some(20.0)),
        second(101, 10, 1, Some(30.0)),
        second(102, 0, 0, None),
        second(103, 10, 0, Some(25.0)),
    ];
    let now = UnixMillis(104_000);
    let latency = segments(&series, now, ChartKind::Latency(Percentile::P95));
    assert_eq!(
        latency,
        vec![vec![(-4.0, 20.0), (-3.0, 30.0)], vec![(-1.0, 25.0)]]
    );
    let errors = segments(&series, now, ChartKind::ErrorRate);
    assert_eq!(
        errors,
        vec![vec![(-4.0, 0.0), (-3.0, 10.0)], vec![(-1.0, 0.0)]]
    );
    // Request rate is known even at zero.
    assert_eq!(segments(&series, now, ChartKind::RequestRate)[0].len(), 4);
    let idle = snapshot(104, vec![second(102, 0, 0, None)], vec![]);
    assert!(!has_points(&idle, ChartKind::Latency(Percentile::P95)));
    assert!(has_points(&idle, ChartKind::RequestRate));
    assert!(has_points(
        &snapshot(104, series.to_vec(), vec![]),
        ChartKind::ErrorRate
    ));
}

#[test]
fn axes_fit_the_data_with_round_tops() {
    let lines = vec![vec![(-2.0, 340.0), (-1.0, 870.0)]];
    assert_eq!(
        y_range(ChartKind::Latency(Percentile::P95), &[&lines]),
        (0.0, 1200.0)
    );
    assert_eq!(y_range(ChartKind::RequestRate, &[&[]]), (0.0, 1.0));
    let success = vec![vec![(-1.0, 97.5), (0.0, 100.0)]];
    assert_eq!(y_range(ChartKind::SuccessRate, &[&success]), (95.0, 100.0));
    assert_eq!(y_range(ChartKind::SuccessRate, &[&[]]), (95.0, 100.0));
    // The drawn range leaves room around the data, so lines at 100 % or 0 % show.
    let (low, high) = plot_range(ChartKind::SuccessRate, &[&success]);
    assert!(low < 95.0 && high > 100.0, "{low}..{high}");
    let errors = vec![vec![(-1.0, 0.2)]];
    assert_eq!(y_range(ChartKind::ErrorRate, &[&errors]), (0.0, 1.0));
}

#[test]
fn the_comparison_says_how_the_canary_differs_and_whether_for_the_worse() {
    let window = |requests, p95, success| WindowStats {
        requests,
        requests_per_sec: requests as f64 / 60.0,
        p95_latency_ms: Some(p95),
        success_rate: Some(success),
        error_rate: Some(1.0 - success),
        ..WindowStats::default()
    };
    let mut metrics = snapshot(100, vec![], vec![]);
    metrics.production.last_1m = window(6000, 120.0, 0.999);
    metrics.canary.last_1m = window(300, 1340.0, 0.95);
    let latency = compare(&metrics, ChartKind::Latency(Percentile::P95));
    assert_eq!(
        (
            latency.production.as_str(),
            latency.canary.as_str(),
            latency.difference.as_str()
        ),
        ("120 ms", "1,340 ms", "+1,220 ms")
    );
    assert!(latency.canary_worse);
    let success = compare(&metrics, ChartKind::SuccessRate);
    assert_eq!(success.difference, "−4.9 %");
    assert!(success.canary_worse);
    assert!(!compare(&metrics, ChartKind::RequestRate).canary_worse);
    // A hair's difference is shown but not marked.
    metrics.canary.last_1m = window(300, 120.4, 0.9985);
    assert!(!compare(&metrics, ChartKind::Latency(Percentile::P95)).canary_worse);
    assert!(!compare(&metrics, ChartKind::SuccessRate).canary_worse);

    // A side with no requests has nothing to compare.
    metrics.canary.last_1m = WindowStats::default();
    let none = compare(&metrics, ChartKind::Latency(Percentile::P95));
    assert_eq!((none.canary.as_str(), none.difference.as_str()), ("—", ""));
}

#[test]
fn theme_colours_and_time_labels_read_well() {
    assert_eq!(parse_hex_color("#2f6fde"), Some((0x2f, 0x6f, 0xde)));
    assert_eq!(parse_hex_color(" #fff "), Some((255, 255, 255)));
    assert_eq!(parse_hex_color("rgb(1, 2, 3)"), None);
    assert_eq!(
        axis_label(ChartKind::Latency(Percentile::P99), 250.0),
        "250 ms"
    );
    assert_eq!(
        axis_label(ChartKind::Latency(Percentile::P99), 1500.0),
        "1.5 s"
    );
    assert_eq!(axis_label(ChartKind::RequestRate, 1200.0), "1.2k/s");
    assert_eq!(axis_label(ChartKind::SuccessRate, 97.5), "97.5 %");
    assert_eq!(time_label(0.0), "now");
    assert_eq!(time_label(-120.0), "−2 min");
    assert_eq!(time_label(-150.0), "−2:30");
}

#[test]
fn a_custom_metric_is_charted_from_its_readings_and_compared_side_by_side() {
    let metric = |values: &[(u64, f64)], current: Option<f64>| canary_shared::CustomMetric {
        name: "memory_query_latency_ms".to_owned(),
        value: current,
        reason: current
            .is_none()
            .then(|| "source timed out after 2 s".to_owned()),
        at: None,
        points: values
            .iter()
            .map(|&(at_s, value)| canary_shared::CustomPoint {
                at: UnixMillis(at_s * 1000),
                value,
            })
            .collect(),
    };
    let mut kept = Some(snapshot(1_000, Vec::new(), Vec::new()));
    let mut update = snapshot(1_001, Vec::new(), Vec::new());
    update.production.custom = vec![metric(&[(900, 20.0), (910, 22.0)], Some(22.0))];
    // Ten seconds apart make one line; two minutes apart start a new one.
    update.canary.custom = vec![metric(&[(800, 30.0), (810, 31.0), (930, 60.0)], Some(60.0))];
    merge_metrics(&mut kept, update, false);
    let kept = kept.unwrap();
    let kind = ChartKind::Custom(0);
    assert_eq!(kind.title_in(Some(&kept)), "memory_query_latency_ms");
    assert_eq!(kind.slug(), "custom-0");
    assert!(has_points(&kept, kind));
    assert_eq!(
        super::lines(&kept.canary, kept.at, kind),
        [vec![(-201.0, 30.0), (-191.0, 31.0)], vec![(-71.0, 60.0)]]
    );
    let comparison = compare(&kept, kind);
    assert_eq!(
        (
            comparison.production.as_str(),
            comparison.canary.as_str(),
            comparison.difference.as_str()
        ),
        ("22", "60", "+38")
    );
    assert!(comparison.canary_worse);
    // A source that fails shows no current value, not zero.
    let mut failing = kept.clone();
    failing.canary.custom[0] = metric(&[(800, 30.0)], None);
    assert_eq!(compare(&failing, kind).canary, "—");
    assert_eq!(compare(&failing, kind).difference, "");
}

#[test]
fn the_evidence_chart_draws_both_evidences_on_a_log_scale_with_the_thresholds() {
    use canary_shared::{EvidencePoint, JudgeConclusion, JudgedMetric};
    let point = |secs, worse, within| EvidencePoint {
        secs,
        worse,
        within,
    };
    let mut metric = JudgedMetric {
        metric: "latency".to_owned(),
        conclusion: JudgeConclusion::Fail,
        words: String::new(),
        worse_evidence: 1000.0,
        within_evidence: 0.0,
        samples: 40,
        fail_at: 200.0,
        pass_at: 100.0,
        history: Vec::new(),
    };
    assert_eq!(
        evidence_plot(&metric),
        None,
        "nothing before the first second"
    );
    metric.history = vec![
        point(1, 1.0, 0.5),
        point(2, 10.0, 0.01),
        point(3, 100.0, 0.0),
        point(4, 1000.0, 1e-9),
    ];
    let plot = evidence_plot(&metric).unwrap();
    // From a hundredth (the floor, 80) to half a decade above the highest
    // evidence (10^3.5, 0): evidence 1 at 50.9, 10 at 36.4, 200 at 17.4.
    assert_eq!(
        plot.worse,
        "0,50.9 60.0,50.9 120.0,36.4 180.0,21.8 240.0,7.3"
    );
    assert_eq!(
        plot.within,
        "0,50.9 60.0,55.3 120.0,80.0 180.0,80.0 240.0,80.0"
    );
    assert_eq!(format!("{:.1}", plot.fail_y), "17.4");
    assert_eq!(format!("{:.1}", plot.pass_y), "21.8");
    assert_eq!(format!("{:.1}", plot.even_y), "50.9");
    assert_eq!(plot.span, "4 s");
    metric.history = vec![point(3_000, 1.0, 1.0)];
    assert_eq!(evidence_plot(&metric).unwrap().span, "50 min");
    metric.history = vec![point(4_000, 1.0, 1.0)];
    assert_eq!(evidence_plot(&metric).unwrap().span, "1 h 6 min");
}

#[test]
fn an_update_brings_the_shadow_steps_latest_figures() {
    let mut kept = None;
    merge_metrics(&mut kept, snapshot(1000, vec![], vec![]), true);
    let mut update = snapshot(1001, vec![], vec![]);
    let shadow: canary_shared::ShadowReport = serde_json::from_str(
        r#"{"active": true, "share": 5.0, "mirrored": 3, "compared": 2, "dropped": 0,
            "skipped_large_body": 0, "unpaired": 0,
            "mismatches": {"status": 0, "body": 1, "failed": 0}, "mismatch_rate": 0.5,
            "mirrored_per_sec": 3.0,
            "canary": {"window_secs": 60, "requests": 2, "requests_per_sec": 0.0, "errors_4xx": 0,
                       "errors_5xx": 0, "transport_errors": {"refused": 0, "reset": 0, "timeout": 0, "overloaded": 0, "other": 0}},
            "production": {"window_secs": 60, "requests": 2, "requests_per_sec": 0.0, "errors_4xx": 0,
                       "errors_5xx": 0, "transport_errors": {"refused": 0, "reset": 0, "timeout": 0, "overloaded": 0, "other": 0}}}"#,
    )
    .unwrap();
    update.shadow = Some(shadow.clone());
    merge_metrics(&mut kept, update, false);
    assert_eq!(kept.as_ref().unwrap().shadow, Some(shadow));
    merge_metrics(&mut kept, snapshot(1002, vec![], vec![]), false);
    assert_eq!(
        kept.unwrap().shadow,
        None,
        "gone when the server stops sending it"
    );
}
