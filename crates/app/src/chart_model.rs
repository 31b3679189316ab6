//! What the live charts show, as pure data: the five-minute series kept
//! from the stream, the points and axis range of each chart, and the
//! current values side by side. Drawing is in
//! [`crate::components::metrics_card`]; everything here is host-tested.

use canary_shared::{MetricsSnapshot, SecondSample, SideMetrics, UnixMillis, WindowStats};

/// How far back the charts reach.
pub const WINDOW_SECS: u64 = 300;

/// Folds a stream message into the metrics kept on screen.
///
/// A full snapshot (after a (re)connect) replaces everything; an update
/// carries the newest windows and only the seconds since the last message,
/// which are appended. Seconds older than the window are dropped, so the
/// series never grows past five minutes whatever the page's uptime.
pub fn merge_metrics(kept: &mut Option<MetricsSnapshot>, update: MetricsSnapshot, full: bool) {
    let Some(current) = kept.as_mut().filter(|_| !full) else {
        let mut fresh = update;
        trim(&mut fresh.production.series, fresh.at);
        trim(&mut fresh.canary.series, fresh.at);
        *kept = Some(fresh);
        return;
    };
    if update.at < current.at {
        return; // late and stale
    }
    let merge_side = |kept: &mut SideMetrics, update: SideMetrics, now: UnixMillis| {
        let newest = kept.series.last().map(|sample| sample.at);
        kept.series.extend(
            update
                .series
                .into_iter()
                .filter(|sample| newest.is_none_or(|newest| sample.at > newest)),
        );
        trim(&mut kept.series, now);
        kept.last_1m = update.last_1m;
        kept.last_5m = update.last_5m;
        // Custom metrics come whole (a point per scrape, five minutes of them).
        kept.custom = update.custom;
    };
    merge_side(&mut current.production, update.production, update.at);
    merge_side(&mut current.canary, update.canary, update.at);
    current.at = update.at;
    current.canary_percent = update.canary_percent;
    current.shadow = update.shadow;
}

fn trim(series: &mut Vec<SecondSample>, now: UnixMillis) {
    let oldest = now.0.saturating_sub(WINDOW_SECS * 1000);
    let stale = series
        .iter()
        .take_while(|sample| sample.at.0 < oldest)
        .count();
    series.drain(..stale);
}

/// A latency percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    /// The median.
    P50,
    /// The 95th percentile.
    P95,
    /// The 99th percentile.
    P99,
}

impl Percentile {
    /// Every choice, for the picker.
    pub const ALL: [Percentile; 3] = [Percentile::P50, Percentile::P95, Percentile::P99];

    /// `p95`.
    pub fn label(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
        }
    }
}

/// One chart's measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    /// Latency at a percentile, in milliseconds.
    Latency(Percentile),
    /// Responses that were not errors, in percent.
    SuccessRate,
    /// Errors (5xx and transport failures), in percent.
    ErrorRate,
    /// Requests per second.
    RequestRate,
    /// The custom metric at this position in `SideMetrics::custom`.
    Custom(u8),
}

impl ChartKind {
    /// The chart's title.
    pub fn title(self) -> String {
        match self {
            ChartKind::Latency(percentile) => format!("Latency ({})", percentile.label()),
            ChartKind::SuccessRate => "Success rate".to_owned(),
            ChartKind::ErrorRate => "Error rate".to_owned(),
            ChartKind::RequestRate => "Request rate".to_owned(),
            ChartKind::Custom(index) => format!("Custom metric {}", index + 1),
        }
    }

    /// The chart's title, with a custom metric's name from `metrics`.
    pub fn title_in(self, metrics: Option<&MetricsSnapshot>) -> String {
        match self {
            ChartKind::Custom(index) => metrics
                .and_then(|metrics| metrics.canary.custom.get(usize::from(index)))
                .map_or_else(|| self.title(), |metric| metric.name.clone()),
            _ => self.title(),
        }
    }

    /// A stable name for test ids and element ids.
    pub fn slug(self) -> String {
        match self {
            ChartKind::Latency(_) => "latency".to_owned(),
            ChartKind::SuccessRate => "success".to_owned(),
            ChartKind::ErrorRate => "errors".to_owned(),
            ChartKind::RequestRate => "requests".to_owned(),
            ChartKind::Custom(index) => format!("custom-{index}"),
        }
    }

    /// The value of one second, if that second says anything about it.
    fn of_second(self, sample: &SecondSample) -> Option<f64> {
        let requests = sample.requests as f64;
        match self {
            ChartKind::Latency(Percentile::P50) => sample.p50_latency_ms,
            ChartKind::Latency(Percentile::P95) => sample.p95_latency_ms,
            ChartKind::Latency(Percentile::P99) => sample.p99_latency_ms,
            ChartKind::SuccessRate if sample.requests > 0 => {
                Some(100.0 * (requests - sample.errors as f64) / requests)
            }
            ChartKind::ErrorRate if sample.requests > 0 => {
                Some(100.0 * sample.errors as f64 / requests)
            }
            ChartKind::SuccessRate | ChartKind::ErrorRate | ChartKind::Custom(_) => None,
            ChartKind::RequestRate => Some(requests),
        }
    }

    /// The current value of one side.
    pub fn of_side(self, side: &SideMetrics) -> Option<f64> {
        match self {
            ChartKind::Custom(index) => side
                .custom
                .get(usize::from(index))
                .and_then(|metric| metric.value),
            _ => self.of_window(&side.last_1m),
        }
    }

    /// The current value from the last minute's window.
    pub fn of_window(self, window: &WindowStats) -> Option<f64> {
        if window.requests == 0 && self != ChartKind::RequestRate {
            return None;
        }
        match self {
            ChartKind::Latency(Percentile::P50) => window.p50_latency_ms,
            ChartKind::Latency(Percentile::P95) => window.p95_latency_ms,
            ChartKind::Latency(Percentile::P99) => window.p99_latency_ms,
            ChartKind::SuccessRate => window.success_rate.map(|rate| rate * 100.0),
            ChartKind::ErrorRate => window.error_rate.map(|rate| rate * 100.0),
            ChartKind::RequestRate => Some(window.requests_per_sec),
            ChartKind::Custom(_) => None,
        }
    }

    /// A value for people: `1,340 ms`, `99.5 %`, `2.4 req/s`.
    pub fn format(self, value: f64) -> String {
        match self {
            ChartKind::Latency(_) => crate::view_model::latency(Some(value)),
            ChartKind::SuccessRate | ChartKind::ErrorRate => format!("{} %", round_to(value, 2)),
            ChartKind::RequestRate => format!("{} req/s", round_to(value, 1)),
            ChartKind::Custom(_) => canary_shared::readable_number(value),
        }
    }

    /// Whether a higher value is worse (for the sign of the difference).
    pub fn higher_is_worse(self) -> bool {
        !matches!(self, ChartKind::SuccessRate | ChartKind::RequestRate)
    }
}

/// `value` with at most `decimals` decimals and no trailing zeros.
pub fn round_to(value: f64, decimals: i32) -> String {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    let text = format!("{rounded:.*}", decimals as usize);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Whether either side has anything to draw on `kind`'s chart; stops at the
/// first point instead of building the lines.
pub fn has_points(metrics: &MetricsSnapshot, kind: ChartKind) -> bool {
    if let ChartKind::Custom(index) = kind {
        return [&metrics.production, &metrics.canary]
            .into_iter()
            .any(|side| {
                side.custom
                    .get(usize::from(index))
                    .is_some_and(|metric| !metric.points.is_empty())
            });
    }
    let oldest = metrics.at.0.saturating_sub(WINDOW_SECS * 1000);
    [&metrics.production.series, &metrics.canary.series]
        .into_iter()
        .flatten()
        .any(|sample| sample.at.0 >= oldest && kind.of_second(sample).is_some())
}

/// A chart's lines: for each side, runs of `(seconds before now, value)`
/// split where a second had nothing to say (no line is drawn across a gap).
pub fn segments(series: &[SecondSample], now: UnixMillis, kind: ChartKind) -> Vec<Vec<(f64, f64)>> {
    runs(
        series
            .iter()
            .map(|sample| (sample.at, kind.of_second(sample))),
        now,
        1_500,
    )
}

/// One side's lines on `kind`'s chart: the per-second series, or a custom
/// metric's readings (a point per scrape or push; a gap of more than a
/// minute breaks the line).
pub fn lines(side: &SideMetrics, now: UnixMillis, kind: ChartKind) -> Vec<Vec<(f64, f64)>> {
    let ChartKind::Custom(index) = kind else {
        return segments(&side.series, now, kind);
    };
    let points = side
        .custom
        .get(usize::from(index))
        .map(|metric| metric.points.as_slice())
        .unwrap_or_default();
    runs(
        points.iter().map(|point| (point.at, Some(point.value))),
        now,
        60_000,
    )
}

/// Points within the window as `(seconds before now, value)`, in runs: a
/// point without a value, or more than `max_gap_ms` after the previous one,
/// starts a new run.
fn runs(
    points: impl IntoIterator<Item = (UnixMillis, Option<f64>)>,
    now: UnixMillis,
    max_gap_ms: u64,
) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous_at: Option<u64> = None;
    for (at, value) in points {
        let x = (at.0 as f64 - now.0 as f64) / 1000.0;
        if x < -(WINDOW_SECS as f64) {
            continue;
        }
        let Some(value) = value else {
            // A gap ends the run; the next value starts a new one.
            previous_at = None;
            continue;
        };
        let contiguous =
            previous_at.is_some_and(|previous| at.0.saturating_sub(previous) <= max_gap_ms);
        previous_at = Some(at.0);
        match runs.last_mut() {
            Some(run) if contiguous => run.push((x, value)),
            _ => runs.push(vec![(x, value)]),
        }
    }
    runs
}

/// The y-axis for both sides' lines: from zero (or near the data for a
/// success rate, which lives close to 100 %) to a little above the highest
/// value, never an empty range.
pub fn y_range(kind: ChartKind, lines: &[&[Vec<(f64, f64)>]]) -> (f64, f64) {
    let values = lines
        .iter()
        .flat_map(|side| side.iter())
        .flat_map(|run| run.iter().map(|&(_, value)| value));
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    match kind {
        ChartKind::SuccessRate => {
            let floor = if low.is_finite() { low } else { 100.0 };
            // Whole 5 % steps below the lowest value, at most down to 0.
            let bottom = ((floor - 1.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
            (bottom, 100.0)
        }
        ChartKind::ErrorRate => (0.0, nice_ceiling((high * 1.2).max(1.0)).min(100.0)),
        ChartKind::Latency(_) | ChartKind::RequestRate | ChartKind::Custom(_) => (
            0.0,
            nice_ceiling(if high.is_finite() { high * 1.15 } else { 1.0 }).max(1.0),
        ),
    }
}

/// The y-axis actually drawn: [`y_range`] with a little room above and
/// below, so a line at exactly 100 % or 0 % is not hidden on the frame.
pub fn plot_range(kind: ChartKind, lines: &[&[Vec<(f64, f64)>]]) -> (f64, f64) {
    let (low, high) = y_range(kind, lines);
    let room = (high - low) * 0.04;
    (low - room, high + room)
}

/// The next "round" number at or above `value`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5,
/// 6 or 8 times a power of ten, so the line fills most of the chart.
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value * 0.999_999)
        .unwrap_or(10.0 * magnitude)
}

/// The current values side by side, with the canary's difference from
/// production and whether that difference is for the worse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// Production's value, or `—`.
    pub production: String,
    /// The canary's value, or `—`.
    pub canary: String,
    /// `+12 ms`, `−0.4 %`; empty when either side has no value.
    pub difference: String,
    /// The canary does worse than production by this measure.
    pub canary_worse: bool,
}

/// Compares the last minute of both sides by `kind`.
pub fn compare(metrics: &MetricsSnapshot, kind: ChartKind) -> Comparison {
    let production = kind.of_side(&metrics.production);
    let canary = kind.of_side(&metrics.canary);
    let show =
        |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |value| kind.format(value));
    let (difference, canary_worse) = match (production, canary) {
        (Some(production), Some(canary)) => {
            let delta = canary - production;
            let sign = if delta > 0.0 {
                "+"
            } else if delta < 0.0 {
                "−"
            } else {
                "±"
            };
            let magnitude = kind.format(delta.abs());
            let worse = if kind.higher_is_worse() {
                delta > 0.0
            } else {
                delta < 0.0
            };
            // Only a difference worth a look is marked: noise is not news.
            let notable = match kind {
                ChartKind::Latency(_) => delta.abs() > (production * 0.1).max(1.0),
                ChartKind::Custom(_) => delta.abs() > (production.abs() * 0.1),
                ChartKind::SuccessRate | ChartKind::ErrorRate => delta.abs() > 0.1,
                // Request rate differs by design (the split), so it is never "worse".
                ChartKind::RequestRate => false,
            };
            let worse = worse && notable;
            (format!("{sign}{magnitude}"), worse)
        }
        _ => (String::new(), false),
    };
    Comparison {
        production: show(production),
        canary: show(canary),
        difference,
        canary_worse,
    }
}

/// `#2f6fde` (or `#fff`) as red, green, blue; `None` for anything else.
pub fn parse_hex_color(text: &str) -> Option<(u8, u8, u8)> {
    let hex = text.trim().strip_prefix('#')?;
    let digit = |index: usize, width: usize| {
        let part = hex.get(index * width..(index + 1) * width)?;
        let value = u8::from_str_radix(part, 16).ok()?;
        Some(if width == 1 { value * 17 } else { value })
    };
    match hex.len() {
        6 => Some((digit(0, 2)?, digit(1, 2)?, digit(2, 2)?)),
        3 => Some((digit(0, 1)?, digit(1, 1)?, digit(2, 1)?)),
        _ => None,
    }
}

/// A y-axis label: compact, with the unit (`250 ms`, `99.5 %`, `1.2k`).
pub fn axis_label(kind: ChartKind, value: f64) -> String {
    match kind {
        ChartKind::Latency(_) if value >= 1000.0 => format!("{} s", round_to(value / 1000.0, 2)),
        ChartKind::Latency(_) => format!("{} ms", round_to(value, 1)),
        ChartKind::SuccessRate | ChartKind::ErrorRate => format!("{} %", round_to(value, 1)),
        ChartKind::RequestRate if value >= 1000.0 => format!("{}k/s", round_to(value / 1000.0, 1)),
        ChartKind::RequestRate => format!("{}/s", round_to(value, 1)),
        ChartKind::Custom(_) if value.abs() >= 10_000.0 => {
            format!("{}k", round_to(value / 1000.0, 1))
        }
        ChartKind::Custom(_) => round_to(value, 2),
    }
}

/// The x-axis label for seconds before now: `now`, `−1 min`, `−2:30`.
pub fn time_label(seconds: f64) -> String {
    let seconds = (-seconds).round().max(0.0) as u64;
    match seconds {
        0 => "now".to_owned(),
        s if s % 60 == 0 => format!("−{} min", s / 60),
        s => format!("−{}:{:02}", s / 60, s % 60),
    }
}

/// The statistical judge's evidence over a rollout, ready for an SVG of
/// [`EVIDENCE_WIDTH`] × [`EVIDENCE_HEIGHT`] units: both evidences on a log
/// scale, with the two thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct EvidencePlot {
    /// `points` of the evidence of "worse than tolerance".
    pub worse: String,
    /// `points` of the evidence of "within tolerance".
    pub within: String,
    /// Heights of the fail and pass thresholds, and of evidence 1 (none either way).
    pub fail_y: f64,
    pub pass_y: f64,
    pub even_y: f64,
    /// How long the chart spans, in words (`3 min 20 s`).
    pub span: String,
}

/// The evidence chart's drawing units.
pub const EVIDENCE_WIDTH: f64 = 240.0;
pub const EVIDENCE_HEIGHT: f64 = 80.0;
/// The lowest evidence drawn (below, the line lies on the floor): a
/// hundredth, where "worse" sinks for a canary as good as production.
const EVIDENCE_FLOOR: f64 = -2.0;

/// Where the judge's evidence went over the rollout; `None` before its first second.
pub fn evidence_plot(metric: &canary_shared::JudgedMetric) -> Option<EvidencePlot> {
    let last = metric.history.last()?;
    let log = |value: f64| {
        if value > 0.0 {
            value.log10().max(EVIDENCE_FLOOR)
        } else {
            EVIDENCE_FLOOR
        }
    };
    let fail_at = log(metric.fail_at.max(1.0));
    let pass_at = log(metric.pass_at.max(1.0));
    // Headroom above the higher threshold, and above evidence far beyond it.
    let highest = metric
        .history
        .iter()
        .map(|point| log(point.worse).max(log(point.within)))
        .fold(fail_at.max(pass_at), f64::max);
    let top = highest + 0.5;
    let y = |log_value: f64| {
        EVIDENCE_HEIGHT * (1.0 - (log_value - EVIDENCE_FLOOR) / (top - EVIDENCE_FLOOR))
    };
    let span = f64::from(last.secs.max(1));
    let x = |secs: u32| EVIDENCE_WIDTH * f64::from(secs) / span;
    let line = |pick: fn(&canary_shared::EvidencePoint) -> f64| {
        // A line needs two points: the rollout's start is evidence 1 (none yet).
        std::iter::once(format!("0,{:.1}", y(0.0)))
            .chain(
                metric
                    .history
                    .iter()
                    .map(|point| format!("{:.1},{:.1}", x(point.secs), y(log(pick(point))))),
            )
            .collect::<Vec<_>>()
            .join(" ")
    };
    let span = crate::view_model::duration_words(u64::from(last.secs) * 1000);
    Some(EvidencePlot {
        worse: line(|point| point.worse),
        within: line(|point| point.within),
        fail_y: y(fail_at),
        pass_y: y(pass_at),
        even_y: y(0.0),
        span,
    })
}

/// The evidence chart as markup for a `<figure>`: the SVG, then a legend.
/// Everything in it is a figure or fixed text, so nothing needs escaping.
pub fn evidence_markup(metric: &canary_shared::JudgedMetric) -> Option<String> {
    let plot = evidence_plot(metric)?;
    let (width, height) = (EVIDENCE_WIDTH, EVIDENCE_HEIGHT);
    let rule = |y: f64, class: &str| {
        format!(
            r#"<line class="{class}" x1="0" x2="{width}" y1="{y:.1}" y2="{y:.1}" vector-effect="non-scaling-stroke"/>"#
        )
    };
    let line = |points: &str, side: &str| {
        format!(
            r#"<polyline class="evidence__line evidence__line--{side}" points="{points}" vector-effect="non-scaling-stroke"/>"#
        )
    };
    Some(format!(
        r#"<svg class="evidence__plot" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" aria-label="Evidence over {span}: of worse {worse:.1} (fails at {fail:.0}), of within {within:.1} (passes at {pass:.0})">{even}{fail_rule}{pass_rule}{within_line}{worse_line}</svg><figcaption class="evidence__legend"><span class="evidence__key evidence__key--worse">worse (fails at {fail:.0})</span><span class="evidence__key evidence__key--within">within (passes at {pass:.0})</span><span class="evidence__span">over {span}, log scale</span></figcaption>"#,
        span = plot.span,
        worse = metric.worse_evidence,
        within = metric.within_evidence,
        fail = metric.fail_at,
        pass = metric.pass_at,
        even = rule(plot.even_y, "evidence__even"),
        fail_rule = rule(plot.fail_y, "evidence__threshold evidence__threshold--fail"),
        pass_rule = rule(plot.pass_y, "evidence__threshold evidence__threshold--pass"),
        within_line = line(&plot.within, "within"),
        worse_line = line(&plot.worse, "worse"),
    ))
}

#[cfg(test)]
mod tests;
