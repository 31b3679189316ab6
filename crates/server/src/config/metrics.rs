//! `metrics:` — custom metrics, and the sources they come from: each
//! side's own Prometheus endpoint (`scrape`), a Prometheus server
//! (`prometheus`), or values services push to canary (`push`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigDuration, HttpPath, UpstreamUrl};
use crate::domain::analysis::BuiltInMetric;

/// `metrics:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "MetricsInput")]
pub struct MetricsConfig {
    /// Each side's own metrics endpoint, scraped.
    pub scrape: Option<ScrapeSourceConfig>,
    /// A Prometheus server, queried.
    pub prometheus: Option<PrometheusSourceConfig>,
    /// A pushed value older than this is no data.
    pub push_max_age: ConfigDuration,
    /// The custom metrics, each from one source.
    pub custom: Vec<CustomMetricConfig>,
}

/// `metrics.scrape:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSourceConfig {
    /// The path on each upstream's URL.
    #[serde(default = "default_scrape_path")]
    pub path: HttpPath,
    /// Production's metrics URL, when it is not the upstream URL with `path`
    /// (another port, say).
    #[serde(default)]
    pub production_url: Option<UpstreamUrl>,
    /// The canary's metrics URL, likewise.
    #[serde(default)]
    pub canary_url: Option<UpstreamUrl>,
    /// How often.
    #[serde(default = "default_scrape_interval")]
    pub interval: ConfigDuration,
    /// How long one scrape may take.
    #[serde(default = "default_scrape_timeout")]
    pub timeout: ConfigDuration,
}

fn default_scrape_path() -> HttpPath {
    HttpPath("/metrics".to_owned())
}

fn default_scrape_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

fn default_scrape_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(2))
}

/// `metrics.prometheus:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSourceConfig {
    /// The server's base URL (`http://prometheus:9090`).
    pub url: UpstreamUrl,
    /// How often each query runs.
    #[serde(default = "default_prometheus_interval")]
    pub interval: ConfigDuration,
    /// How long one query may take.
    #[serde(default = "default_prometheus_timeout")]
    pub timeout: ConfigDuration,
}

fn default_prometheus_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(15))
}

fn default_prometheus_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

/// Where a custom metric's values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// Each side's own exposition (`metrics.scrape`).
    Scrape,
    /// A PromQL query per side (`metrics.prometheus`).
    Prometheus,
    /// `POST /admin/canary/metrics/custom`.
    Push,
}

/// `metrics.custom[]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetricConfig {
    /// The name checks use (`memory_query_latency_ms`).
    pub name: String,
    /// Where its values come from.
    pub from: MetricSource,
    /// `scrape`: the metric's name in the service's exposition.
    #[serde(default)]
    pub series: Option<String>,
    /// `scrape`: labels a sample must have, exactly.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `scrape`: the quantile of a histogram or a summary (0.95).
    #[serde(default)]
    pub quantile: Option<f64>,
    /// `scrape`: read a counter as a rate per this duration (`1h`).
    #[serde(default)]
    pub rate_per: Option<ConfigDuration>,
    /// `scrape`, `prometheus`: multiplies the value (1000: seconds to milliseconds).
    #[serde(default = "one")]
    pub scale: f64,
    /// `prometheus`: the PromQL query; `{side}` becomes `production` or `canary`.
    #[serde(default)]
    pub query: Option<String>,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsInput {
    #[serde(default)]
    scrape: Option<ScrapeSourceConfig>,
    #[serde(default)]
    prometheus: Option<PrometheusSourceConfig>,
    #[serde(default = "default_push_max_age")]
    push_max_age: ConfigDuration,
    #[serde(default)]
    custom: Vec<CustomMetricConfig>,
}

fn default_push_max_age() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(120))
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            scrape: None,
            prometheus: None,
            push_max_age: default_push_max_age(),
            custom: Vec::new(),
        }
    }
}

impl TryFrom<MetricsInput> for MetricsConfig {
    type Error = String;

    fn try_from(input: MetricsInput) -> Result<Self, Self::Error> {
        let mut seen = std::collections::HashSet::new();
        for metric in &input.custom {
            let name = &metric.name;
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                return Err(format!(
                    "custom metric {name:?}: a name is lower-case letters, digits and `_`"
                ));
            }
            if BuiltInMetric::from_name(name).is_some()
                || name == crate::domain::shadow::MISMATCH_RATE_METRIC
            {
                return Err(format!(
                    "custom metric {name:?}: the proxy measures `{name}` already; choose another name"
                ));
            }
            if !seen.insert(name.clone()) {
                return Err(format!("custom metric {name:?} is defined twice"));
            }
            if !metric.scale.is_finite() || metric.scale == 0.0 {
                return Err(format!(
                    "custom metric {name:?}: `scale` must be a non-zero number"
                ));
            }
            let scrape_only = metric.series.is_some()
                || !metric.labels.is_empty()
                || metric.quantile.is_some()
                || metric.rate_per.is_some();
            match metric.from {
                MetricSource::Scrape => {
                    if input.scrape.is_none() {
                        return Err(format!(
                            "custom metric {name:?} is scraped, but there is no `metrics.scrape` section"
                        ));
                    }
                    if metric.series.as_deref().is_none_or(str::is_empty) {
                        return Err(format!(
                            "custom metric {name:?}: name the `series` to read from the exposition"
                        ));
                    }
                    if metric.query.is_some() {
                        return Err(format!(
                            "custom metric {name:?}: `query` is for `from: prometheus`"
                        ));
                    }
                    if metric.quantile.is_some() && metric.rate_per.is_some() {
                        return Err(format!(
                            "custom metric {name:?}: a quantile or a rate, not both"
                        ));
                    }
                    if let Some(quantile) = metric.quantile
                        && !(quantile > 0.0 && quantile < 1.0)
                    {
                        return Err(format!(
                            "custom metric {name:?}: `quantile` is between 0 and 1 (0.95), got {quantile}"
                        ));
                    }
                    if metric.rate_per.is_some_and(|per| per.0.is_zero()) {
                        return Err(format!(
                            "custom metric {name:?}: `rate_per` must be longer than 0"
                        ));
                    }
                }
                MetricSource::Prometheus => {
                    if input.prometheus.is_none() {
                        return Err(format!(
                            "custom metric {name:?} is queried, but there is no `metrics.prometheus` section"
                        ));
                    }
                    if metric
                        .query
                        .as_deref()
                        .is_none_or(|query| query.trim().is_empty())
                    {
                        return Err(format!("custom metric {name:?}: write the PromQL `query`"));
                    }
                    if scrape_only {
                        return Err(format!(
                            "custom metric {name:?}: `series`, `labels`, `quantile` and `rate_per` are for `from: scrape`"
                        ));
                    }
                }
                MetricSource::Push => {
                    if scrape_only || metric.query.is_some() {
                        return Err(format!(
                            "custom metric {name:?} is pushed: it takes no `series`, `query` or other reading rules"
                        ));
                    }
                }
            }
        }
        if input.push_max_age.0.is_zero() {
            return Err("`push_max_age` must be longer than 0".to_owned());
        }
        Ok(MetricsConfig {
            scrape: input.scrape,
            prometheus: input.prometheus,
            push_max_age: input.push_max_age,
            custom: input.custom,
        })
    }
}
