//! Custom metrics from a service's own exposition: the value a rule picks
//! out of two consecutive scrapes (a gauge as it is, a counter as a rate, a
//! histogram's quantile over what was observed between the scrapes, a
//! summary's quantile), or why there is none, in words.

use std::collections::BTreeMap;

use crate::domain::exposition::{Exposition, MetricType, Sample};

/// What to read from a scrape, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeRule {
    /// The metric's name in the exposition.
    pub series: String,
    /// Labels a sample must have, exactly.
    pub labels: BTreeMap<String, String>,
    /// For a histogram or a summary: the quantile, within 0–1.
    pub quantile: Option<f64>,
    /// For a counter: the rate's unit, in seconds (3600 for "per hour").
    pub rate_per_secs: Option<f64>,
    /// Multiplies the value (1000 turns seconds into milliseconds).
    pub scale: f64,
}

/// One scrape and when it was taken (monotonic milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Scraped {
    /// When, in monotonic milliseconds.
    pub at_ms: u64,
    /// What it said.
    pub exposition: Exposition,
}

impl ScrapeRule {
    fn matches(&self, sample: &Sample, name: &str) -> bool {
        sample.name == name
            && self
                .labels
                .iter()
                .all(|(label, value)| sample.label(label) == Some(value.as_str()))
    }

    /// The value this rule reads from `current`, using `previous` for rates
    /// and histogram quantiles.
    pub fn derive(&self, previous: Option<&Scraped>, current: &Scraped) -> Result<f64, String> {
        let exposition = &current.exposition;
        let series = &self.series;
        let kind = exposition.type_of(series);
        let value = match (kind, self.quantile, self.rate_per_secs) {
            (MetricType::Histogram, Some(quantile), _) => {
                let previous = previous.ok_or("waiting for a second scrape")?;
                histogram_quantile(
                    quantile,
                    &self.buckets(exposition),
                    &self.buckets(&previous.exposition),
                )?
            }
            (MetricType::Histogram, None, _) => {
                return Err(format!("{series} is a histogram: set quantile"));
            }
            (MetricType::Summary, Some(quantile), _) => {
                let matching: Vec<f64> = exposition
                    .samples
                    .iter()
                    .filter(|sample| self.matches(sample, series))
                    .filter(|sample| {
                        sample
                            .label("quantile")
                            .and_then(|text| text.parse::<f64>().ok())
                            .is_some_and(|q| (q - quantile).abs() < 1e-9)
                    })
                    .map(|sample| sample.value)
                    .collect();
                self.exactly_one(&matching, &format!("{series}{{quantile=\"{quantile}\"}}"))?
            }
            (MetricType::Summary, None, _) => {
                return Err(format!("{series} is a summary: set quantile"));
            }
            (_, _, Some(per_secs)) => {
                let previous = previous.ok_or("waiting for a second scrape to compute a rate")?;
                let now = self.sum(exposition)?;
                let before = self.sum(&previous.exposition)?;
                let elapsed_secs = current.at_ms.saturating_sub(previous.at_ms) as f64 / 1000.0;
                if elapsed_secs <= 0.0 {
                    return Err("two scrapes at the same moment".to_owned());
                }
                // A counter that went down was reset (the service restarted):
                // it counted from zero since.
                let increase = if now >= before { now - before } else { now };
                increase / elapsed_secs * per_secs
            }
            (MetricType::Counter, _, None) => {
                return Err(format!(
                    "{series} is a counter: set rate_per to read it as a rate"
                ));
            }
            (MetricType::Gauge | MetricType::Untyped, Some(_), None) => {
                return Err(format!("{series} has no quantiles: it is a gauge"));
            }
            (MetricType::Gauge | MetricType::Untyped, None, None) => {
                let matching: Vec<f64> = exposition
                    .samples
                    .iter()
                    .filter(|sample| self.matches(sample, series))
                    .map(|sample| sample.value)
                    .collect();
                self.exactly_one(&matching, series)?
            }
        };
        let scaled = value * self.scale;
        if scaled.is_finite() {
            Ok(scaled)
        } else {
            Err(format!("{series} is {value}"))
        }
    }

    fn exactly_one(&self, values: &[f64], what: &str) -> Result<f64, String> {
        match values {
            [] => Err(format!("series missing: no {what}{}", self.label_words())),
            [value] => Ok(*value),
            many => Err(format!(
                "{} series match {what}{}; choose one with labels",
                many.len(),
                self.label_words()
            )),
        }
    }

    fn label_words(&self) -> String {
        if self.labels.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self
                .labels
                .iter()
                .map(|(label, value)| format!("{label}={value:?}"))
                .collect();
            format!(" with {}", pairs.join(", "))
        }
    }

    /// The sum of every matching sample (a counter split by labels adds up).
    fn sum(&self, exposition: &Exposition) -> Result<f64, String> {
        let values: Vec<f64> = exposition
            .samples
            .iter()
            .filter(|sample| self.matches(sample, &self.series))
            .map(|sample| sample.value)
            .collect();
        if values.is_empty() {
            return Err(format!(
                "series missing: no {}{}",
                self.series,
                self.label_words()
            ));
        }
        Ok(values.iter().sum())
    }

    /// Cumulative counts by upper bound, summed over matching label sets.
    fn buckets(&self, exposition: &Exposition) -> BTreeMap<OrderedBound, f64> {
        let name = format!("{}_bucket", self.series);
        let mut buckets = BTreeMap::new();
        for sample in exposition
            .samples
            .iter()
            .filter(|sample| self.matches(sample, &name))
        {
            if let Some(bound) = sample.label("le").and_then(parse_bound) {
                *buckets.entry(OrderedBound(bound)).or_insert(0.0) += sample.value;
            }
        }
        buckets
    }
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// A bucket bound that sorts (bounds are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrderedBound(f64);

impl Eq for OrderedBound {}

impl PartialOrd for OrderedBound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedBound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The quantile of what was observed between two scrapes of a histogram,
/// interpolated within its bucket as Prometheus's `histogram_quantile` does.
fn histogram_quantile(
    quantile: f64,
    current: &BTreeMap<OrderedBound, f64>,
    previous: &BTreeMap<OrderedBound, f64>,
) -> Result<f64, String> {
    if current.is_empty() {
        return Err("series missing: no buckets".to_owned());
    }
    let deltas: Vec<(f64, f64)> = current
        .iter()
        .map(|(bound, count)| {
            let before = previous.get(bound).copied().unwrap_or(0.0);
            // A reset counts from zero, like a counter's.
            let observed = if *count >= before {
                count - before
            } else {
                *count
            };
            (bound.0, observed)
        })
        .collect();
    let total = deltas.last().map_or(0.0, |(_, count)| *count);
    if deltas.last().is_none_or(|(bound, _)| bound.is_finite()) {
        return Err("the histogram has no +Inf bucket".to_owned());
    }
    if total <= 0.0 {
        return Err("no observations since the last scrape".to_owned());
    }
    let rank = quantile * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, count) in &deltas {
        if *count >= rank {
            if bound.is_infinite() {
                // Beyond the last finite bucket: its bound is the best known.
                return Ok(lower_bound);
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return Ok(*bound);
            }
            return Ok(lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket);
        }
        lower_bound = *bound;
        lower_count = *count;
    }
    Ok(lower_bound)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::domain::custom_metrics::{ScrapeRule, Scraped};
    use crate::domain::exposition::parse;

    fn scraped(at_ms: u64, text: &str) -> Scraped {
        Scraped {
            at_ms,
            exposition: parse(text).unwrap(),
        }
    }

    fn rule(series: &str) -> ScrapeRule {
        ScrapeRule {
            series: series.to_owned(),
            labels: BTreeMap::new(),
            quantile: None,
            rate_per_secs: None,
            scale: 1.0,
        }
    }

    #[test]
    fn a_gauge_is_read_as_it_is_and_scaled() {
        let now = scraped(
            0,
            "memory_query_latency_seconds{pool=\"a\"} 0.0415\nother 1\n",
        );
        let read = ScrapeRule {
            scale: 1000.0,
            ..rule("memory_query_latency_seconds")
        };
        assert!((read.derive(None, &now).unwrap() - 41.5).abs() < 1e-9);
    }

    #[test]
    fn a_missing_or_ambiguous_series_says_so() {
        let now = scraped(0, "g{pool=\"a\"} 1\ng{pool=\"b\"} 2\n");
        assert_eq!(
            rule("h").derive(None, &now).unwrap_err(),
            "series missing: no h"
        );
        assert_eq!(
            rule("g").derive(None, &now).unwrap_err(),
            "2 series match g; choose one with labels"
        );
        let narrowed = ScrapeRule {
            labels: BTreeMap::from([("pool".to_owned(), "b".to_owned())]),
            ..rule("g")
        };
        assert_eq!(narrowed.derive(None, &now), Ok(2.0));
    }

    #[test]
    fn a_counter_becomes_a_rate_per_the_chosen_unit_and_survives_a_reset() {
        let read = ScrapeRule {
            rate_per_secs: Some(3600.0),
            ..rule("sandbox_executions_total")
        };
        let text = |a: u32, b: u32| {
            format!(
                "# TYPE sandbox_executions_total counter\nsandbox_executions_total{{kind=\"a\"}} {a}\nsandbox_executions_total{{kind=\"b\"}} {b}\n"
            )
        };
        let first = scraped(0, &text(100, 50));
        assert_eq!(
            read.derive(None, &first).unwrap_err(),
            "waiting for a second scrape to compute a rate"
        );
        let second = scraped(10_000, &text(110, 60));
        assert_eq!(read.derive(Some(&first), &second), Ok(7200.0), "20 in 10 s");
        let restarted = scraped(20_000, &text(3, 2));
        assert_eq!(
            read.derive(Some(&second), &restarted),
            Ok(1800.0),
            "5 since the reset"
        );
        assert_eq!(
            rule("sandbox_executions_total")
                .derive(None, &first)
                .unwrap_err(),
            "sandbox_executions_total is a counter: set rate_per to read it as a rate"
        );
    }

    #[test]
    fn a_histogram_quantile_covers_only_what_was_observed_between_scrapes() {
        let text = |counts: [u32; 4]| {
            format!(
                "# TYPE latency_seconds histogram\nlatency_seconds_bucket{{le=\"0.01\"}} {}\nlatency_seconds_bucket{{le=\"0.05\"}} {}\nlatency_seconds_bucket{{le=\"0.1\"}} {}\nlatency_seconds_bucket{{le=\"+Inf\"}} {}\nlatency_seconds_sum 1\nlatency_seconds_count {}\n",
                counts[0], counts[1], counts[2], counts[3], counts[3]
            )
        };
        let read = ScrapeRule {
            quantile: Some(0.95),
            scale: 1000.0,
            ..rule("latency_seconds")
        };
        // Long ago everything was fast; since the last scrape, 100 requests:
        // 50 under 10 ms, 40 more under 50 ms, 10 more under 100 ms.
        let before = scraped(0, &text([10_000, 10_000, 10_000, 10_000]));
        let now = scraped(10_000, &text([10_050, 10_090, 10_100, 10_100]));
        // The 95th is the 5th of the 10 in (50 ms, 100 ms]: 75 ms.
        let p95 = read.derive(Some(&before), &now).unwrap();
        assert!((p95 - 75.0).abs() < 1e-6, "{p95}");
        assert_eq!(
            read.derive(Some(&now), &now).unwrap_err(),
            "no observations since the last scrape"
        );
        assert_eq!(
            read.derive(None, &now).unwrap_err(),
            "waiting for a second scrape"
        );
        // Everything beyond the last finite bucket: its bound is the answer.
        let slow = scraped(20_000, &text([10_050, 10_090, 10_100, 10_200]));
        assert_eq!(read.derive(Some(&now), &slow), Ok(100.0));
    }

    #[test]
    fn a_summary_quantile_is_read_from_its_quantile_label() {
        let now = scraped(
            0,
            "# TYPE rpc_seconds summary\nrpc_seconds{quantile=\"0.5\"} 0.01\nrpc_seconds{quantile=\"0.95\"} 0.2\nrpc_seconds_sum 5\nrpc_seconds_count 100\n",
        );
        let read = ScrapeRule {
            quantile: Some(0.95),
            scale: 1000.0,
            ..rule("rpc_seconds")
        };
        assert_eq!(read.derive(None, &now), Ok(200.0));
        let missing = ScrapeRule {
            quantile: Some(0.99),
            ..read
        };
        assert_eq!(
            missing.derive(None, &now).unwrap_err(),
            "series missing: no rpc_seconds{quantile=\"0.99\"}"
        );
    }
}
