//! Custom metrics from outside the proxy: each side's own Prometheus
//! endpoint (scraped), a Prometheus server (queried), and values services
//! push. Readings land in [`CustomReadings`], which the metrics ticker folds
//! into every [`canary_shared::MetricsSnapshot`], so the checks, the stream
//! and the charts all see the same values.
//!
//! A source that fails is not a bad value: its reading becomes the reason
//! ("source timed out after 2 s", "series missing: …"), which the checks
//! judge as NO_DATA, never as a pass and never as zero.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use canary_shared::{CustomMetric, CustomPoint, Side, UnixMillis};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::adapters::proxy::SharedRouting;
use crate::config::{Config, MetricSource};
use crate::domain::custom_metrics::{ScrapeRule, Scraped};
use crate::domain::exposition;
use crate::ports::Clock;

/// How long charts keep custom values.
const KEPT_MS: u64 = 5 * 60 * 1000;
/// The largest exposition or query answer read.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The latest reading of one metric of one side.
#[derive(Clone, Debug, Default)]
struct Entry {
    /// The latest attempt: a value, or why there is none.
    latest: Option<(Result<f64, String>, UnixMillis)>,
    /// Values of the last five minutes.
    points: VecDeque<CustomPoint>,
}

/// Every custom metric's latest reading per side.
#[derive(Debug)]
pub struct CustomReadings {
    /// The configured metrics in order, with how old a reading may get.
    metrics: Vec<(String, MetricSource, u64)>,
    entries: Mutex<BTreeMap<(Side, String), Entry>>,
}

impl CustomReadings {
    /// Readings for the metrics in `config`.
    pub fn new(config: &Config) -> CustomReadings {
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let metrics = config
            .metrics
            .custom
            .iter()
            .map(|metric| {
                // A source that stops reporting is stale after three of its
                // intervals; a pushed value after `push_max_age`.
                let max_age = match metric.from {
                    MetricSource::Scrape => config
                        .metrics
                        .scrape
                        .as_ref()
                        .map_or(30_000, |scrape| 3 * millis(scrape.interval.0)),
                    MetricSource::Prometheus => config
                        .metrics
                        .prometheus
                        .as_ref()
                        .map_or(45_000, |prometheus| 3 * millis(prometheus.interval.0)),
                    MetricSource::Push => millis(config.metrics.push_max_age.0),
                };
                (metric.name.clone(), metric.from, max_age)
            })
            .collect();
        CustomReadings {
            metrics,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether `name` is a metric configured with `from: push`.
    pub fn accepts_push(&self, name: &str) -> bool {
        self.metrics
            .iter()
            .any(|(metric, from, _)| metric == name && *from == MetricSource::Push)
    }

    /// The names of the pushed metrics.
    pub fn pushed_names(&self) -> Vec<&str> {
        self.metrics
            .iter()
            .filter(|(_, from, _)| *from == MetricSource::Push)
            .map(|(name, _, _)| name.as_str())
            .collect()
    }

    /// Records a reading of `name` on `side`, taken at `at`.
    pub fn record(&self, side: Side, name: &str, reading: Result<f64, String>, at: UnixMillis) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry((side, name.to_owned())).or_default();
        if entry
            .latest
            .as_ref()
            .is_some_and(|(_, latest)| latest.0 > at.0)
        {
            // An older value (a late push) does not replace a newer one.
            return;
        }
        if let Ok(value) = &reading {
            entry.points.push_back(CustomPoint { at, value: *value });
            while entry
                .points
                .front()
                .is_some_and(|point| at.0.saturating_sub(point.at.0) > KEPT_MS)
            {
                entry.points.pop_front();
            }
        }
        entry.latest = Some((reading, at));
    }

    /// Every configured metric of `side` as it stands at `now`.
    pub fn view(&self, side: Side, now: UnixMillis) -> Vec<CustomMetric> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics
            .iter()
            .map(|(name, from, max_age)| {
                let entry = entries.get(&(side, name.clone()));
                let points: Vec<CustomPoint> = entry
                    .map(|entry| {
                        entry
                            .points
                            .iter()
                            .filter(|point| now.0.saturating_sub(point.at.0) <= KEPT_MS)
                            .copied()
                            .collect()
                    })
                    .unwrap_or_default();
                let (value, reason, at) = match entry.and_then(|entry| entry.latest.as_ref()) {
                    None => (None, Some(no_reading_yet(*from)), None),
                    Some((_, at)) if now.0.saturating_sub(at.0) > *max_age => (
                        None,
                        Some(format!(
                            "no value for {} s (more than {} s old)",
                            now.0.saturating_sub(at.0) / 1000,
                            max_age / 1000
                        )),
                        Some(*at),
                    ),
                    Some((Ok(value), at)) => (Some(*value), None, Some(*at)),
                    Some((Err(reason), at)) => (None, Some(reason.clone()), Some(*at)),
                };
                CustomMetric {
                    name: name.clone(),
                    value,
                    reason,
                    at,
                    points,
                }
            })
            .collect()
    }
}

fn no_reading_yet(from: MetricSource) -> String {
    match from {
        MetricSource::Scrape => "not scraped yet".to_owned(),
        MetricSource::Prometheus => "not queried yet".to_owned(),
        MetricSource::Push => "nothing pushed yet".to_owned(),
    }
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .expect("ring supports rustls's safe default protocol versions")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// GETs `url` and returns its body as text, or why not, in words.
async fn fetch(client: &HttpClient, url: &str, timeout: Duration) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|err| format!("bad URL {url}: {err}"))?;
    let request = hyper::Request::get(uri)
        .header("accept", "text/plain, application/json")
        .body(Empty::new())
        .map_err(|err| err.to_string())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| format!("source unreachable: {}", crate::adapters::error_chain(&err)))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|err| format!("source broke off: {err}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("source answered HTTP {}", status.as_u16()));
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| "source answered with non-UTF-8 text".to_owned())
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "source timed out after {}",
            crate::domain::deployment::human_duration(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
            )
        )
    })?
}

/// Scrapes one side's exposition every interval and records every
/// `from: scrape` metric of that side.
pub async fn run_scraper(
    side: Side,
    routing: SharedRouting,
    config: Arc<Config>,
    readings: Arc<CustomReadings>,
    clock: Arc<dyn Clock>,
) {
    let Some(scrape) = config.metrics.scrape.clone() else {
        return;
    };
    let rules: Vec<(String, ScrapeRule)> = config
        .metrics
        .custom
        .iter()
        .filter(|metric| metric.from == MetricSource::Scrape)
        .map(|metric| {
            (
                metric.name.clone(),
                ScrapeRule {
                    series: metric.series.clone().unwrap_or_default(),
                    labels: metric.labels.clone(),
                    quantile: metric.quantile,
                    rate_per_secs: metric.rate_per.map(|per| per.0.as_secs_f64()),
                    scale: metric.scale,
                },
            )
        })
        .collect();
    if rules.is_empty() {
        return;
    }
    let fixed_url = match (side, &scrape.production_url, &scrape.canary_url) {
        (Side::Production, Some(url), _) | (Side::Canary, _, Some(url)) => Some(url.to_string()),
        _ => None,
    };
    let client = client();
    let started = tokio::time::Instant::now();
    let mut previous: Option<Scraped> = None;
    let mut previous_url: Option<String> = None;
    let mut ticker = tokio::time::interval(scrape.interval.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Without a URL of its own, a side is scraped on the upstream that
        // plays it now (a promotion may have swapped them); a rate is never
        // taken across two upstreams.
        let url = fixed_url.clone().unwrap_or_else(|| {
            let slot = routing.get().slot_of(side);
            config.upstreams.slot(slot).url.join(&scrape.path.0)
        });
        if previous_url.as_ref() != Some(&url) {
            previous = None;
            previous_url = Some(url.clone());
        }
        let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let fetched = fetch(&client, &url, scrape.timeout.0)
            .await
            .and_then(|text| {
                exposition::parse(&text).map_err(|err| format!("unreadable exposition: {err}"))
            });
        let now = clock.now();
        match fetched {
            Ok(exposition) => {
                let current = Scraped { at_ms, exposition };
                for (name, rule) in &rules {
                    readings.record(side, name, rule.derive(previous.as_ref(), &current), now);
                }
                previous = Some(current);
            }
            Err(reason) => {
                tracing::debug!(side = side.as_str(), %url, %reason, "scrape failed");
                for (name, _) in &rules {
                    readings.record(side, name, Err(reason.clone()), now);
                }
            }
        }
    }
}

/// Runs every `from: prometheus` query for both sides every interval.
pub async fn run_prometheus(
    config: Arc<Config>,
    readings: Arc<CustomReadings>,
    clock: Arc<dyn Clock>,
) {
    let Some(prometheus) = config.metrics.prometheus.clone() else {
        return;
    };
    let queries: Vec<(String, String, f64)> = config
        .metrics
        .custom
        .iter()
        .filter(|metric| metric.from == MetricSource::Prometheus)
        .map(|metric| {
            (
                metric.name.clone(),
                metric.query.clone().unwrap_or_default(),
                metric.scale,
            )
        })
        .collect();
    if queries.is_empty() {
        return;
    }
    let client = client();
    let mut ticker = tokio::time::interval(prometheus.interval.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (name, template, scale) in &queries {
            for side in Side::BOTH {
                let query = template.replace("{side}", side.as_str());
                let url = format!(
                    "{}?query={}",
                    prometheus.url.join("/api/v1/query"),
                    crate::query::encode_value(&query)
                );
                let reading = fetch(&client, &url, prometheus.timeout.0)
                    .await
                    .and_then(|body| prometheus_value(&body))
                    .map(|value| value * scale);
                readings.record(side, name, reading, clock.now());
            }
        }
    }
}

/// The one value of a Prometheus `/api/v1/query` answer, or why there is none.
pub fn prometheus_value(body: &str) -> Result<f64, String> {
    let answer: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| "Prometheus answered with something that is not JSON".to_owned())?;
    if answer["status"] != "success" {
        return Err(format!(
            "query failed: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => &one["value"],
            Some([]) => return Err("query returned no series".to_owned()),
            Some(many) => {
                return Err(format!(
                    "query returned {} series; aggregate it to one (sum, max, …)",
                    many.len()
                ));
            }
            None => return Err("query answer has no result".to_owned()),
        },
        other => {
            return Err(format!(
                "query returned a {}, not one value",
                other.unwrap_or("nothing")
            ));
        }
    };
    let value = sample[1]
        .as_str()
        .and_then(|text| text.parse::<f64>().ok())
        .ok_or("query answer has no value")?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("query returned {value}"))
    }
}

#[cfg(test)]
mod tests {
    use canary_shared::{Side, UnixMillis};

    use crate::adapters::metric_sources::{CustomReadings, prometheus_value};
    use crate::config::Config;

    fn config() -> Config {
        let mut config = Config::from_yaml(include_str!("../../../../canary-config.yaml")).unwrap();
        config.metrics = Config::from_yaml(
            "canary: { auto_progression: { enabled: true, wait_time: 1h, thresholds: { max_latency: 1s, min_success_rate: 0.9, max_error_rate: 0.1 } }, traffic_steps: [100] }\nmetrics:\n  push_max_age: 1m\n  custom:\n    - { name: queue_depth, from: push }\n",
        )
        .unwrap()
        .metrics;
        config
    }

    #[test]
    fn a_reading_is_a_value_or_a_reason_and_goes_stale() {
        let readings = CustomReadings::new(&config());
        let view = |now: u64| readings.view(Side::Canary, UnixMillis(now)).remove(0);
        assert_eq!(view(0).reason.as_deref(), Some("nothing pushed yet"));
        readings.record(Side::Canary, "queue_depth", Ok(12.0), UnixMillis(1_000));
        assert_eq!(view(2_000).value, Some(12.0));
        assert_eq!(
            readings.view(Side::Production, UnixMillis(2_000))[0].value,
            None,
            "each side on its own"
        );
        // A late value never replaces a newer one.
        readings.record(Side::Canary, "queue_depth", Ok(99.0), UnixMillis(500));
        assert_eq!(view(2_000).value, Some(12.0));
        let stale = view(70_000);
        assert_eq!(stale.value, None);
        assert_eq!(
            stale.reason.as_deref(),
            Some("no value for 69 s (more than 60 s old)")
        );
        readings.record(
            Side::Canary,
            "queue_depth",
            Err("source timed out after 2 s".to_owned()),
            UnixMillis(71_000),
        );
        assert_eq!(
            view(71_000).reason.as_deref(),
            Some("source timed out after 2 s")
        );
        assert_eq!(view(71_000).points.len(), 1, "the chart keeps the values");
    }

    #[test]
    fn a_prometheus_answer_gives_one_value_or_says_why_not() {
        let vector = |result: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{result}]}}}}"#
            )
        };
        assert_eq!(
            prometheus_value(&vector(r#"{"metric":{},"value":[1700000000.1,"41.5"]}"#)),
            Ok(41.5)
        );
        assert_eq!(
            prometheus_value(&vector("")),
            Err("query returned no series".to_owned())
        );
        assert_eq!(
            prometheus_value(&vector(
                r#"{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}"#
            )),
            Err("query returned 2 series; aggregate it to one (sum, max, …)".to_owned())
        );
        assert_eq!(
            prometheus_value(
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}"#
            ),
            Ok(7.0)
        );
        assert_eq!(
            prometheus_value(
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#
            ),
            Err("query failed: parse error at char 5".to_owned())
        );
        assert_eq!(
            prometheus_value("<html>"),
            Err("Prometheus answered with something that is not JSON".to_owned())
        );
        assert_eq!(
            prometheus_value(&vector(r#"{"metric":{},"value":[1,"NaN"]}"#)),
            Err("query returned NaN".to_owned())
        );
    }
}
