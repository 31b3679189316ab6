//! Safety analysis: the canary's measured window against each check.
//!
//! Pure: the window and the checks come in, every check's status and the
//! combined [`Verdict`] come out, each with its reason in words and numbers.
//! Missing data is never a pass: too few requests, or a metric no source
//! provides, is `NO_DATA` and keeps the rollout from progressing.

use canary_shared::{AlertLevel, CheckStatus, Comparator, CustomMetric, SafetyCheck, WindowStats};

use crate::domain::deployment::Verdict;

/// One check to judge.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckSpec {
    /// Shown to people.
    pub name: String,
    /// The metric read.
    pub metric: String,
    /// Upper or lower limit.
    pub comparator: Comparator,
    /// The limit.
    pub threshold: f64,
    /// What a breach leads to.
    pub alert_level: AlertLevel,
    /// Whether anything provides the metric (the proxy, or a source under
    /// `metrics.custom`); a check without one is shown, never judged.
    pub has_source: bool,
    /// Also judged on the canary's last this many seconds (a metric the
    /// proxy measures): a breach there counts as the check's breach.
    pub fast_window_secs: Option<u32>,
}

/// How checks are judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnalysisSettings {
    /// Fewer canary requests than this in the window is `NO_DATA`.
    pub min_requests: u64,
    /// Within this fraction of the threshold (on the safe side) is `WATCH`.
    pub watch_margin: f64,
    /// Whether the window is the canary's answers to mirrored requests
    /// (the shadow step): only then is `shadow_mismatch_rate` judged.
    pub shadow: bool,
}

/// Every check's reading and the verdict they add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Each check with value, status and reason.
    pub checks: Vec<SafetyCheck>,
    /// Critical breach, warning breach, no data, or green: the first that applies.
    pub verdict: Verdict,
}

/// A metric the proxy measures itself, on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltInMetric {
    /// `avg_latency_ms`
    AvgLatencyMs,
    /// `p50_latency_ms`
    P50LatencyMs,
    /// `p95_latency_ms`
    P95LatencyMs,
    /// `p99_latency_ms`
    P99LatencyMs,
    /// `max_latency_ms`
    MaxLatencyMs,
    /// `success_rate`
    SuccessRate,
    /// `error_rate`
    ErrorRate,
}

impl BuiltInMetric {
    /// Every built-in metric.
    pub const ALL: [BuiltInMetric; 7] = [
        BuiltInMetric::AvgLatencyMs,
        BuiltInMetric::P50LatencyMs,
        BuiltInMetric::P95LatencyMs,
        BuiltInMetric::P99LatencyMs,
        BuiltInMetric::MaxLatencyMs,
        BuiltInMetric::SuccessRate,
        BuiltInMetric::ErrorRate,
    ];

    /// The name a config uses for it.
    pub fn name(self) -> &'static str {
        match self {
            BuiltInMetric::AvgLatencyMs => "avg_latency_ms",
            BuiltInMetric::P50LatencyMs => "p50_latency_ms",
            BuiltInMetric::P95LatencyMs => "p95_latency_ms",
            BuiltInMetric::P99LatencyMs => "p99_latency_ms",
            BuiltInMetric::MaxLatencyMs => "max_latency_ms",
            BuiltInMetric::SuccessRate => "success_rate",
            BuiltInMetric::ErrorRate => "error_rate",
        }
    }

    /// The built-in metric called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<BuiltInMetric> {
        BuiltInMetric::ALL
            .into_iter()
            .find(|metric| metric.name() == name)
    }

    /// Its value in `window`, if the window has one.
    pub fn read(self, window: &WindowStats) -> Option<f64> {
        match self {
            BuiltInMetric::AvgLatencyMs => window.avg_latency_ms,
            BuiltInMetric::P50LatencyMs => window.p50_latency_ms,
            BuiltInMetric::P95LatencyMs => window.p95_latency_ms,
            BuiltInMetric::P99LatencyMs => window.p99_latency_ms,
            BuiltInMetric::MaxLatencyMs => window.max_latency_ms,
            BuiltInMetric::SuccessRate => window.success_rate,
            BuiltInMetric::ErrorRate => window.error_rate,
        }
    }
}

/// Whether the proxy measures `metric` itself.
fn is_built_in(metric: &str) -> bool {
    BuiltInMetric::from_name(metric).is_some()
}

/// The value of `metric`: from the proxy's `window`, or from the `custom`
/// metrics' readings (a source's failure is the reason there is no value).
fn read(
    metric: &str,
    window: &WindowStats,
    custom: &[CustomMetric],
) -> Result<Option<f64>, String> {
    if let Some(built_in) = BuiltInMetric::from_name(metric) {
        return Ok(built_in.read(window));
    }
    match custom.iter().find(|reading| reading.name == metric) {
        Some(reading) => match (reading.value, &reading.reason) {
            (Some(value), _) => Ok(Some(value)),
            (None, Some(reason)) => Err(reason.clone()),
            (None, None) => Err(format!("no value for `{metric}`")),
        },
        None => Err(format!(
            "no source provides `{metric}`; define it under metrics.custom"
        )),
    }
}

/// `p95 latency`, `error rate`: the metric as people say it.
fn metric_words(metric: &str) -> String {
    let words = metric.trim_end_matches("_ms").replace('_', " ");
    match words.split_once(' ') {
        Some((first, rest))
            if first.starts_with('p') && first[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("{first} {rest}")
        }
        _ => words,
    }
}

/// A value with its unit, as people read it: `1,340 ms`, `12.5 %`.
fn value_words(metric: &str, value: f64) -> String {
    if metric.ends_with("_ms") {
        format!(
            "{} ms",
            canary_shared::words::thousands(value.round() as u64)
        )
    } else if metric.ends_with("_rate") {
        let percent = value * 100.0;
        if (percent - percent.round()).abs() < 0.05 {
            format!("{} %", percent.round())
        } else {
            format!("{percent:.1} %")
        }
    } else {
        let rounded = (value * 100.0).round() / 100.0;
        format!("{rounded}")
    }
}

/// Whose requests a window counts, in words.
fn requests_of(settings: AnalysisSettings) -> &'static str {
    if settings.shadow { "shadow" } else { "canary" }
}

/// Judges one check against the canary's window.
pub fn judge_check(
    spec: &CheckSpec,
    window: &WindowStats,
    custom: &[CustomMetric],
    settings: AnalysisSettings,
) -> SafetyCheck {
    let reading = |value: Option<f64>, status: CheckStatus, reason: String| SafetyCheck {
        name: spec.name.clone(),
        metric: spec.metric.clone(),
        comparator: spec.comparator,
        threshold: spec.threshold,
        alert_level: spec.alert_level,
        current_value: value,
        status,
        reason: Some(reason),
    };
    if !spec.has_source {
        return reading(
            None,
            CheckStatus::NoSource,
            format!(
                "nothing provides `{}`: define it under metrics.custom; not judged until then",
                spec.metric
            ),
        );
    }
    if spec.metric == crate::domain::shadow::MISMATCH_RATE_METRIC && !settings.shadow {
        return reading(
            None,
            CheckStatus::Inactive,
            "judged on mirrored requests, during the shadow step only".to_owned(),
        );
    }
    let value = match read(&spec.metric, window, custom) {
        Err(reason) => return reading(None, CheckStatus::NoData, reason),
        Ok(value) => value,
    };
    // The proxy's figures need traffic to mean anything; a custom metric
    // comes from the service itself and is judged on its own.
    if is_built_in(&spec.metric) && window.requests < settings.min_requests {
        let reason = format!(
            "{} {} requests in the last {} s, {} needed to judge",
            window.requests,
            requests_of(settings),
            window.window_secs,
            settings.min_requests
        );
        return reading(value, CheckStatus::NoData, reason);
    }
    let Some(value) = value else {
        return reading(
            None,
            CheckStatus::NoData,
            format!("no {} measured", metric_words(&spec.metric)),
        );
    };
    let shown = value_words(&spec.metric, value);
    let limit = value_words(&spec.metric, spec.threshold);
    let what = metric_words(&spec.metric);
    // WATCH starts a fraction of the room between the limit and the best a
    // metric can be. For most that room is the limit itself (a latency's
    // best is 0), but a rate's best is 1: a success rate held to 0.99 has
    // 0.01 of room, and 10 % of 0.99 would put even 100 % in WATCH.
    let room = match spec.comparator {
        Comparator::Min if spec.metric.ends_with("_rate") && spec.threshold < 1.0 => {
            1.0 - spec.threshold
        }
        _ => spec.threshold.abs(),
    };
    let margin = room * settings.watch_margin;
    let (status, reason) = match spec.comparator {
        Comparator::Max if value > spec.threshold => {
            (CheckStatus::Breach, format!("{what} {shown} > {limit}"))
        }
        Comparator::Min if value < spec.threshold => {
            (CheckStatus::Breach, format!("{what} {shown} < {limit}"))
        }
        Comparator::Max if value > spec.threshold - margin => (
            CheckStatus::Watch,
            format!("{what} {shown}, close to the limit of {limit}"),
        ),
        Comparator::Min if value < spec.threshold + margin => (
            CheckStatus::Watch,
            format!("{what} {shown}, close to the limit of {limit}"),
        ),
        Comparator::Max => (CheckStatus::Safe, format!("{what} {shown} ≤ {limit}")),
        Comparator::Min => (CheckStatus::Safe, format!("{what} {shown} ≥ {limit}")),
    };
    reading(Some(value), status, reason)
}

/// `spec` judged on its short window (among `short`, by length), when it
/// has one and breaches there. Not breaching on a short window says
/// nothing: its few requests are the minute's to judge.
pub fn fast_breach(
    spec: &CheckSpec,
    short: &[WindowStats],
    settings: AnalysisSettings,
) -> Option<SafetyCheck> {
    let secs = spec.fast_window_secs?;
    if !is_built_in(&spec.metric) {
        return None;
    }
    let window = short.iter().find(|window| window.window_secs == secs)?;
    let mut check = judge_check(spec, window, &[], settings);
    (check.status == CheckStatus::Breach).then(|| {
        check.reason = check
            .reason
            .map(|reason| format!("{reason} in the last {secs} s"));
        check
    })
}

/// Judges every check and combines them into one verdict; a check with a
/// fast window breaches when either its minute (`window`) or its short
/// window (among `short`) does.
pub fn analyse(
    specs: &[CheckSpec],
    window: &WindowStats,
    short: &[WindowStats],
    custom: &[CustomMetric],
    settings: AnalysisSettings,
) -> Analysis {
    let checks: Vec<SafetyCheck> = specs
        .iter()
        .map(|spec| {
            fast_breach(spec, short, settings)
                .unwrap_or_else(|| judge_check(spec, window, custom, settings))
        })
        .collect();
    let first = |wanted: CheckStatus, level: Option<AlertLevel>| {
        checks
            .iter()
            .find(|check| {
                check.status == wanted && level.is_none_or(|level| check.alert_level == level)
            })
            .map(|check| {
                format!(
                    "{}: {}",
                    check.name,
                    check.reason.clone().unwrap_or_default()
                )
            })
    };
    let verdict = if let Some(reason) = first(CheckStatus::Breach, Some(AlertLevel::Critical)) {
        Verdict::Critical { reason }
    } else if let Some(reason) = first(CheckStatus::Breach, Some(AlertLevel::Warning)) {
        Verdict::Warning { reason }
    } else if window.requests < settings.min_requests
        && checks
            .iter()
            .any(|check| check.status == CheckStatus::NoData && is_built_in(&check.metric))
    {
        // Too little traffic leaves every proxy-measured check without data
        // for the same reason: say it once, without naming one check.
        Verdict::NoData {
            reason: format!(
                "{} {} requests in the last {} s, {} needed to judge",
                window.requests,
                requests_of(settings),
                window.window_secs,
                settings.min_requests
            ),
        }
    } else if let Some(reason) = first(CheckStatus::NoData, None) {
        Verdict::NoData { reason }
    } else {
        Verdict::Green
    };
    Analysis { checks, verdict }
}

#[cfg(test)]
mod tests {
    use canary_shared::{AlertLevel, CheckStatus, Comparator, WindowStats};

    use crate::domain::analysis::{AnalysisSettings, CheckSpec, analyse, judge_check};
    use crate::domain::deployment::Verdict;

    const SETTINGS: AnalysisSettings = AnalysisSettings {
        shadow: false,
        min_requests: 20,
        watch_margin: 0.1,
    };

    fn window(requests: u64, p95: f64, error_rate: f64) -> WindowStats {
        WindowStats {
            window_secs: 60,
            requests,
            p95_latency_ms: Some(p95),
            error_rate: Some(error_rate),
            success_rate: Some(1.0 - error_rate),
            ..WindowStats::default()
        }
    }

    fn latency_check(level: AlertLevel) -> CheckSpec {
        CheckSpec {
            name: "Total Latency".to_owned(),
            metric: "p95_latency_ms".to_owned(),
            comparator: Comparator::Max,
            threshold: 1000.0,
            alert_level: level,
            has_source: true,
            fast_window_secs: None,
        }
    }

    #[test]
    fn a_check_is_safe_watch_or_breach_with_its_numbers() {
        let check = latency_check(AlertLevel::Critical);
        let judged = |p95| judge_check(&check, &window(100, p95, 0.0), &[], SETTINGS);
        assert_eq!(judged(400.0).status, CheckStatus::Safe);
        assert_eq!(
            judged(400.0).reason.as_deref(),
            Some("p95 latency 400 ms ≤ 1,000 ms")
        );
        assert_eq!(judged(950.0).status, CheckStatus::Watch);
        assert_eq!(judged(1340.0).status, CheckStatus::Breach);
        assert_eq!(
            judged(1340.0).reason.as_deref(),
            Some("p95 latency 1,340 ms > 1,000 ms")
        );
        assert_eq!(judged(1340.0).current_value, Some(1340.0));
    }

    #[test]
    fn a_minimum_is_breached_from_below() {
        let check = CheckSpec {
            name: "Success".to_owned(),
            metric: "success_rate".to_owned(),
            comparator: Comparator::Min,
            threshold: 0.85,
            alert_level: AlertLevel::Warning,
            has_source: true,
            fast_window_secs: None,
        };
        let judged = judge_check(&check, &window(100, 10.0, 0.2), &[], SETTINGS);
        assert_eq!(judged.status, CheckStatus::Breach);
        assert_eq!(judged.reason.as_deref(), Some("success rate 80 % < 85 %"));
    }

    #[test]
    fn a_strict_success_rate_watches_only_near_its_limit() {
        // Held to 99 %: the room to 100 % is 1 point, so WATCH is its last
        // tenth, and a perfect canary is SAFE.
        let check = CheckSpec {
            name: "Success".to_owned(),
            metric: "success_rate".to_owned(),
            comparator: Comparator::Min,
            threshold: 0.99,
            alert_level: AlertLevel::Critical,
            has_source: true,
            fast_window_secs: None,
        };
        let judged =
            |error_rate| judge_check(&check, &window(1000, 10.0, error_rate), &[], SETTINGS).status;
        assert_eq!(judged(0.0), CheckStatus::Safe, "100 % success");
        assert_eq!(judged(0.005), CheckStatus::Safe, "99.5 %");
        assert_eq!(judged(0.0095), CheckStatus::Watch, "99.05 %");
        assert_eq!(judged(0.02), CheckStatus::Breach, "98 %");
        // An error-rate limit keeps its room from 0, as before.
        let errors = CheckSpec {
            metric: "error_rate".to_owned(),
            comparator: Comparator::Max,
            threshold: 0.15,
            ..check
        };
        let judged = |error_rate| {
            judge_check(&errors, &window(1000, 10.0, error_rate), &[], SETTINGS).status
        };
        assert_eq!(judged(0.10), CheckStatus::Safe);
        assert_eq!(judged(0.14), CheckStatus::Watch);
    }

    #[test]
    fn too_few_requests_or_an_unknown_metric_is_no_data_never_a_pass() {
        let judged = judge_check(
            &latency_check(AlertLevel::Critical),
            &window(3, 5000.0, 1.0),
            &[],
            SETTINGS,
        );
        assert_eq!(judged.status, CheckStatus::NoData);
        assert_eq!(
            judged.reason.as_deref(),
            Some("3 canary requests in the last 60 s, 20 needed to judge")
        );
        let custom = CheckSpec {
            metric: "memory_query_latency_ms".to_owned(),
            ..latency_check(AlertLevel::Warning)
        };
        let judged = judge_check(&custom, &window(100, 1.0, 0.0), &[], SETTINGS);
        assert_eq!(judged.status, CheckStatus::NoData);
        assert_eq!(
            judged.reason.as_deref(),
            Some("no source provides `memory_query_latency_ms`; define it under metrics.custom")
        );
    }

    #[test]
    fn a_check_nothing_provides_is_shown_as_no_source_and_holds_nothing() {
        let orphan = CheckSpec {
            name: "Memory Queries".to_owned(),
            metric: "memory_query_latency_ms".to_owned(),
            has_source: false,
            ..latency_check(AlertLevel::Warning)
        };
        let analysis = analyse(
            &[latency_check(AlertLevel::Critical), orphan],
            &window(100, 20.0, 1.0),
            &[],
            &[],
            SETTINGS,
        );
        assert_eq!(analysis.checks[1].status, CheckStatus::NoSource);
        assert!(
            analysis.checks[1]
                .reason
                .as_deref()
                .is_some_and(|reason| reason.contains("metrics.custom")),
            "{:?}",
            analysis.checks[1].reason
        );
        assert_eq!(
            analysis.verdict,
            Verdict::Green,
            "the checks that can be judged decide"
        );
    }

    #[test]
    fn a_custom_metric_is_judged_on_its_reading_and_a_failed_source_is_no_data() {
        let check = CheckSpec {
            name: "Memory Queries".to_owned(),
            metric: "memory_query_latency_ms".to_owned(),
            ..latency_check(AlertLevel::Warning)
        };
        let reading = |value: Option<f64>, reason: Option<&str>| canary_shared::CustomMetric {
            name: "memory_query_latency_ms".to_owned(),
            value,
            reason: reason.map(str::to_owned),
            at: None,
            points: Vec::new(),
        };
        // Judged even with little proxy traffic: the service measured it.
        let few_requests = window(3, 10.0, 0.0);
        let judged =
            |value, reason| judge_check(&check, &few_requests, &[reading(value, reason)], SETTINGS);
        assert_eq!(judged(Some(400.0), None).status, CheckStatus::Safe);
        assert_eq!(judged(Some(950.0), None).status, CheckStatus::Watch);
        let breach = judged(Some(1340.0), None);
        assert_eq!(breach.status, CheckStatus::Breach);
        assert_eq!(
            breach.reason.as_deref(),
            Some("memory query latency 1,340 ms > 1,000 ms")
        );
        let failed = judged(None, Some("source timed out after 2 s"));
        assert_eq!(
            failed.status,
            CheckStatus::NoData,
            "never a pass, never zero"
        );
        assert_eq!(failed.reason.as_deref(), Some("source timed out after 2 s"));
        assert_eq!(failed.current_value, None);
    }

    #[test]
    fn the_verdict_puts_critical_breaches_first_and_no_data_before_green() {
        let specs = [
            latency_check(AlertLevel::Warning),
            latency_check(AlertLevel::Critical),
        ];
        let analysis = analyse(&specs, &window(100, 2000.0, 0.0), &[], &[], SETTINGS);
        assert_eq!(
            analysis.verdict,
            Verdict::Critical {
                reason: "Total Latency: p95 latency 2,000 ms > 1,000 ms".to_owned()
            }
        );
        let analysis = analyse(&specs[..1], &window(100, 2000.0, 0.0), &[], &[], SETTINGS);
        assert!(matches!(analysis.verdict, Verdict::Warning { .. }));
        let analysis = analyse(&specs, &window(5, 10.0, 0.0), &[], &[], SETTINGS);
        assert_eq!(
            analysis.verdict,
            Verdict::NoData {
                reason: "5 canary requests in the last 60 s, 20 needed to judge".to_owned()
            },
            "too little traffic is said once, not blamed on the first check"
        );
        let custom = CheckSpec {
            name: "Memory Queries".to_owned(),
            metric: "memory_query_latency_ms".to_owned(),
            ..latency_check(AlertLevel::Warning)
        };
        let analysis = analyse(&[custom], &window(100, 10.0, 0.0), &[], &[], SETTINGS);
        assert_eq!(
            analysis.verdict,
            Verdict::NoData {
                reason: "Memory Queries: no source provides `memory_query_latency_ms`; define it under metrics.custom"
                    .to_owned()
            }
        );
        let analysis = analyse(&specs, &window(100, 10.0, 0.0), &[], &[], SETTINGS);
        assert_eq!(analysis.verdict, Verdict::Green);
        assert_eq!(
            analyse(&[], &window(0, 0.0, 0.0), &[], &[], SETTINGS).verdict,
            Verdict::Green
        );
    }
}
