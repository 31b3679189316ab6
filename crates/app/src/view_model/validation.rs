//! The shadow step's panel as markup: the copies' figures, both sides'
//! latency for the same requests, a chart of their p95 second by second,
//! and the latest mismatched examples. Written as one string for the
//! panel's `inner_html` (far less WASM than a tree of views); what came
//! from requests and answers (paths, headers, body excerpts) is escaped.

use canary_shared::{ShadowReport, WindowStats};

use crate::view_model::{latency, rate, thousands};

/// Mismatched examples shown, newest first (the server keeps 20).
const EXAMPLES_SHOWN: usize = 5;

/// The chart's drawing units.
const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 60.0;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The line above the figures: what is copied, and whether it still is.
pub fn shadow_summary(report: &ShadowReport) -> String {
    if report.active {
        format!(
            "Copying {} of production's requests to the canary ({:.1} a second); clients are answered by production only.",
            report.share, report.mirrored_per_sec
        )
    } else if report.mirrored == 0 {
        format!(
            "The shadow step copies {} of production's requests to the canary before it serves anyone.",
            report.share
        )
    } else {
        format!(
            "The shadow step copied {} of production's requests; it is over.",
            report.share
        )
    }
}

fn figure(label: &str, value: String, bad: bool) -> String {
    let class = if bad { " class=\"shadow__bad\"" } else { "" };
    format!("<div><dt>{label}</dt><dd{class}>{value}</dd></div>")
}

fn latency_row(label: &str, window: &WindowStats) -> String {
    format!(
        "<tr><th scope=\"row\">{label}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        latency(window.p50_latency_ms),
        latency(window.p95_latency_ms),
        latency(window.p99_latency_ms),
        rate(window.error_rate),
    )
}

/// The p95 of both sides second by second, as an SVG; `None` with fewer
/// than two seconds.
fn chart(report: &ShadowReport) -> Option<String> {
    let series = &report.series;
    if series.len() < 2 {
        return None;
    }
    let highest = series
        .iter()
        .flat_map(|second| [second.canary_p95_ms, second.production_p95_ms])
        .flatten()
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |index: usize| WIDTH * index as f64 / (series.len() - 1) as f64;
    let line = |pick: fn(&canary_shared::ShadowSecond) -> Option<f64>, side: &str| {
        let points: Vec<String> = series
            .iter()
            .enumerate()
            .filter_map(|(index, second)| {
                pick(second)
                    .map(|ms| format!("{:.1},{:.1}", x(index), HEIGHT * (1.0 - ms / highest)))
            })
            .collect();
        format!(
            r#"<polyline class="shadow__line shadow__line--{side}" points="{}" vector-effect="non-scaling-stroke"/>"#,
            points.join(" ")
        )
    };
    let mismatched: String = series
        .iter()
        .enumerate()
        .filter(|(_, second)| second.mismatches > 0)
        .map(|(index, _)| {
            format!(
                r#"<line class="shadow__mismatch" x1="{x:.1}" x2="{x:.1}" y1="0" y2="{HEIGHT}" vector-effect="non-scaling-stroke"/>"#,
                x = x(index)
            )
        })
        .collect();
    Some(format!(
        r#"<figure class="shadow__chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" aria-label="p95 latency of the same requests, second by second, up to {top}">{mismatched}{production}{canary}</svg><figcaption class="evidence__legend"><span class="shadow__key shadow__key--canary">canary p95</span><span class="shadow__key shadow__key--production">production p95, same requests</span><span class="evidence__span">last {secs} s, up to {top}</span></figcaption></figure>"#,
        top = latency(Some(highest)),
        secs = series.len(),
        production = line(|second| second.production_p95_ms, "production"),
        canary = line(|second| second.canary_p95_ms, "canary"),
    ))
}

/// Everything under the summary line.
pub fn shadow_markup(report: &ShadowReport) -> String {
    let mismatches = report.mismatches.total();
    let mut html = String::from("<dl class=\"shadow__figures\">");
    html.push_str(&figure("Compared", thousands(report.compared), false));
    html.push_str(&figure(
        "Mismatched",
        format!(
            "{} ({} in the last minute)",
            thousands(mismatches),
            rate(report.mismatch_rate)
        ),
        mismatches > 0,
    ));
    html.push_str(&figure(
        "By kind",
        format!(
            "status {} · body {} · no answer {}",
            thousands(report.mismatches.status),
            thousands(report.mismatches.body),
            thousands(report.mismatches.failed)
        ),
        false,
    ));
    html.push_str(&figure(
        "Not copied",
        format!(
            "{} queue full · {} body too large",
            thousands(report.dropped),
            thousands(report.skipped_large_body)
        ),
        report.dropped > 0,
    ));
    html.push_str("</dl>");
    html.push_str("<table class=\"shadow__latency\"><caption>The same requests, last minute (time to the response head)</caption><tr><th></th><th scope=\"col\">p50</th><th scope=\"col\">p95</th><th scope=\"col\">p99</th><th scope=\"col\">Errors</th></tr>");
    html.push_str(&latency_row("Canary", &report.canary));
    html.push_str(&latency_row("Production", &report.production));
    html.push_str("</table>");
    if let Some(chart) = chart(report) {
        html.push_str(&chart);
    }
    if !report.examples.is_empty() {
        let more = report.examples.len().saturating_sub(EXAMPLES_SHOWN);
        let title = if more > 0 {
            format!(
                "Latest mismatches ({EXAMPLES_SHOWN} of the {} kept; all at GET /admin/canary/validation)",
                report.examples.len()
            )
        } else {
            "Latest mismatches".to_owned()
        };
        html.push_str(&format!("<h3 class=\"decisions__title\">{title}</h3><ol class=\"shadow__examples\" data-testid=\"shadow-examples\">"));
        for example in report.examples.iter().take(EXAMPLES_SHOWN) {
            let canary = example
                .canary_status
                .map_or_else(|| "no answer".to_owned(), |status| status.to_string());
            let headers: Vec<String> = example
                .headers
                .iter()
                .map(|(name, value)| format!("{}: {}", escape(name), escape(value)))
                .collect();
            let withheld = if example.redacted.is_empty() {
                String::new()
            } else {
                format!(" · {} withheld", escape(&example.redacted.join(", ")))
            };
            html.push_str(&format!(
                "<li class=\"shadow__example\"><div class=\"decision__head\"><code>{} {}</code><span>production {} · canary {}</span><span class=\"badge badge--bad\">{}</span></div><p class=\"decision__reason\">{}</p><p class=\"shadow__headers\">{}{}</p></li>",
                escape(&example.method),
                escape(&example.path),
                example.production_status,
                canary,
                example.kind.label(),
                escape(&example.detail),
                headers.join(" · "),
                withheld,
            ));
        }
        html.push_str("</ol>");
    }
    html
}

#[cfg(test)]
mod tests {
    use canary_shared::{
        CanaryShare, MismatchCounts, MismatchExample, MismatchKind, ShadowReport, ShadowSecond,
        UnixMillis, WindowStats,
    };

    use super::{escape, shadow_markup, shadow_summary};

    fn report() -> ShadowReport {
        ShadowReport {
            active: true,
            share: CanaryShare::from_percent(5.0).unwrap(),
            mirrored: 1_204,
            compared: 1_200,
            dropped: 3,
            skipped_large_body: 1,
            unpaired: 0,
            mismatches: MismatchCounts {
                status: 2,
                body: 30,
                failed: 1,
            },
            mismatch_rate: Some(0.0275),
            mirrored_per_sec: 20.1,
            canary: WindowStats {
                p95_latency_ms: Some(31.0),
                ..WindowStats::default()
            },
            production: WindowStats::default(),
            series: Vec::new(),
            examples: Vec::new(),
        }
    }

    #[test]
    fn the_summary_says_what_is_copied_and_whether_it_still_is() {
        let mut report = report();
        assert_eq!(
            shadow_summary(&report),
            "Copying 5 % of production's requests to the canary (20.1 a second); clients are answered by production only."
        );
        report.active = false;
        assert_eq!(
            shadow_summary(&report),
            "The shadow step copied 5 % of production's requests; it is over."
        );
    }

    #[test]
    fn the_figures_show_counts_kinds_and_both_sides_latency() {
        let html = shadow_markup(&report());
        for expected in [
            "<dt>Compared</dt><dd>1,200</dd>",
            "<dd class=\"shadow__bad\">33 (2.8 % in the last minute)</dd>",
            "status 2 · body 30 · no answer 1",
            "3 queue full · 1 body too large",
            "<th scope=\"row\">Canary</th><td>—</td><td>31 ms</td>",
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
        assert!(!html.contains("<svg"), "no chart before two seconds");
    }

    #[test]
    fn examples_are_escaped_and_say_what_was_withheld() {
        let mut report = report();
        report.examples.push(MismatchExample {
            at: UnixMillis(0),
            method: "GET".to_owned(),
            path: "/search?q=<script>alert(1)</script>".to_owned(),
            headers: vec![("accept".to_owned(), "text/html".to_owned())],
            redacted: vec!["authorization".to_owned(), "cookie".to_owned()],
            kind: MismatchKind::Failed,
            production_status: 200,
            canary_status: None,
            detail: "bodies differ: \"<b>\"".to_owned(),
        });
        let html = shadow_markup(&report);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("GET /search?q=&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("production 200 · canary no answer"));
        assert!(html.contains("accept: text/html · authorization, cookie withheld"));
        assert!(html.contains("bodies differ: &quot;&lt;b&gt;&quot;"));
        assert_eq!(escape("a'b&c"), "a&#39;b&amp;c");
        let first = report.examples[0].clone();
        report.examples = vec![first; 20];
        let html = shadow_markup(&report);
        assert_eq!(html.matches("<li class=\"shadow__example\"").count(), 5);
        assert!(
            html.contains(
                "Latest mismatches (5 of the 20 kept; all at GET /admin/canary/validation)"
            )
        );
    }

    #[test]
    fn the_chart_draws_both_sides_and_marks_seconds_with_mismatches() {
        let mut report = report();
        report.series = (0..3)
            .map(|second| ShadowSecond {
                at: UnixMillis(second * 1000),
                compared: 10,
                mismatches: u64::from(second == 2),
                canary_p95_ms: Some(20.0),
                production_p95_ms: Some(10.0),
            })
            .collect();
        let html = shadow_markup(&report);
        assert_eq!(html.matches("<polyline").count(), 2);
        assert_eq!(html.matches("shadow__mismatch").count(), 1);
        assert!(html.contains("last 3 s, up to 22 ms"), "{html}");
    }
}
