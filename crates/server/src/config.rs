//! `canary-config.yaml`: the typed configuration and its validation.
//!
//! Parsing is pure ([`Config::from_yaml`]); reading the file is separate
//! ([`Config::load`]). Every value is validated while it is deserialized, so
//! every error carries the line, column and field path of the value at fault.
//! The seed's `canary:` block loads unchanged; every other section has defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use canary_shared::{AlertLevel, Comparator};
use serde::{Deserialize, Serialize};

use crate::domain::analysis::BuiltInMetric;

/// Serializes newtypes the way they are written in the file.
macro_rules! serialize_as {
    ($type:ty, |$value:ident| $body:expr) => {
        impl Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let $value = self;
                serde::Serialize::serialize(&$body, serializer)
            }
        }
    };
}

mod access;
mod across;
mod checks;
mod derived;
mod locate;
mod metrics;
mod oidc;
mod panel;
mod proxy;
mod proxy_auth;
mod push;
mod router;
mod scalars;
mod upstreams;
mod validation;

use crate::config::across::invalid_at;
pub use crate::config::checks::{
    AutoProgressionConfig, AutoRollbackConfig, SafetyCheckConfig, ThresholdsConfig,
};
pub use crate::config::locate::MAX_NESTING;
use crate::config::locate::{PathSegment, check_nesting, locate};
pub use crate::config::proxy::{
    ClientTimeout, HostHeader, IpNetwork, MIN_CLIENT_TIMEOUT, OverrideConfig, ProxyConfig,
    StickinessConfig, StickinessMode, TokenDigest,
};
pub use crate::config::scalars::{
    ByteSize, ConfigDuration, FastWindow, HeaderName, HttpPath, Rate, Threshold, TrafficSteps,
    UpstreamUrl, format_duration, parse_duration,
};

pub use crate::config::access::{
    AllowedOrigin, AuthConfig, IdentityName, NotificationConfig, NotifyFormat, NotifyUrl,
    PasswordHash, SessionConfig, TlsConfig, TokenConfig, TokenHash, UserConfig,
};
pub use crate::config::metrics::{
    CustomMetricConfig, MetricSource, MetricsConfig, PrometheusSourceConfig, ScrapeSourceConfig,
};
pub use crate::config::oidc::{ClientSecretText, OidcConfig, OidcText, OidcUrl};
pub use crate::config::panel::{PanelLabel, PanelLink, PanelUrl, PathPrefix};
pub use crate::config::proxy_auth::{GroupRolesConfig, ProxyAuthConfig, Unmapped};
pub use crate::config::push::{PushConfig, PushContact, PushTtl};
pub use crate::config::router::{
    GatewayApiConfig, GatewayServices, HaproxyConfig, HaproxyServers, KubeName, LoopbackAddr,
    NginxConfig, NginxVariable, OnDrift, ProxyName, RouterConfig, RouterKind, RuntimeSocket,
};
pub use crate::config::upstreams::{
    HealthCheckConfig, HookCommand, HookConfig, HooksConfig, OnPromotion, UpstreamConfig,
    UpstreamProtocol, UpstreamsConfig,
};
pub use crate::config::validation::{
    CompareBody, IgnoredField, MAX_TEST_RUNS, MirrorMethod, MirrorShare, QueueSize, ShadowConfig,
    TestRunConfig, TestRunName, TestRuns, ValidationConfig,
};

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and where data lives.
    #[serde(default)]
    pub server: ServerConfig,
    /// The two services traffic is split between.
    #[serde(default)]
    pub upstreams: UpstreamsConfig,
    /// How the built-in proxy splits and forwards traffic.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// What splits the traffic: the built-in proxy, or HAProxy.
    #[serde(default)]
    pub router: RouterConfig,
    /// Commands run at each stage of a rollout.
    #[serde(default)]
    pub hooks: HooksConfig,
    /// What checks the canary before it gets any traffic.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// The rollout rules (the seed's block).
    pub canary: CanaryConfig,
    /// Logins and API tokens; without this section the admin API has no
    /// logins and must listen on loopback.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Receivers told about rollout events.
    #[serde(default)]
    pub notifications: Vec<NotificationConfig>,
    /// Custom metrics and their sources.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Web Push alerts to operators' devices.
    #[serde(default)]
    pub push: PushConfig,
}

/// `server:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The console, REST API and WebSocket.
    pub admin_listen: SocketAddr,
    /// The traffic-splitting proxy.
    pub proxy_listen: SocketAddr,
    /// State and audit trail.
    pub data_dir: PathBuf,
    /// The built console (trunk's `dist`); see [`ServerConfig::DEFAULT_ASSETS_DIR`].
    pub assets_dir: PathBuf,
    /// How long per-second metrics are kept in the store for the charts.
    pub metrics_retention: ConfigDuration,
    /// Serve the admin listener over HTTPS.
    pub tls: Option<TlsConfig>,
    /// Origins (`scheme://host[:port]`, exact) whose pages may show the
    /// console in a frame, such as the team's admin panel; none by default.
    pub frame_ancestors: Vec<AllowedOrigin>,
    /// The path the console, API and WebSocket are served under, behind a
    /// reverse proxy that keeps it (`/ops`: the console at `/ops/admin/canary`).
    pub path_prefix: Option<PathPrefix>,
    /// A link back to the team's admin panel in the console's header.
    pub panel_link: Option<PanelLink>,
}

impl ServerConfig {
    /// The path prefix, `""` without one.
    pub fn prefix(&self) -> &str {
        self.path_prefix
            .as_ref()
            .map_or("", |prefix| prefix.0.as_str())
    }
}

impl ServerConfig {
    /// Where `cargo xtask build-app` puts the console, relative to the repo.
    pub const DEFAULT_ASSETS_DIR: &'static str = "crates/app/dist";
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            proxy_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("canary-data"),
            assets_dir: PathBuf::from(ServerConfig::DEFAULT_ASSETS_DIR),
            metrics_retention: ConfigDuration(Duration::from_secs(24 * 3600)),
            tls: None,
            frame_ancestors: Vec::new(),
            path_prefix: None,
            panel_link: None,
        }
    }
}

/// `canary:` — the seed's block plus what the product adds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// When green metrics advance the rollout by themselves.
    pub auto_progression: AutoProgressionConfig,
    /// The canary shares a rollout walks through, ending at 100.
    pub traffic_steps: TrafficSteps,
    /// Checks judged continuously during a rollout.
    #[serde(default)]
    pub safety_checks: Vec<SafetyCheckConfig>,
    /// Whether a critical breach rolls back without a human.
    #[serde(default)]
    pub auto_rollback: AutoRollbackConfig,
    /// How the checks are judged.
    #[serde(default)]
    pub analysis: AnalysisConfig,
    /// The statistical judge: canary against production, anytime-valid.
    #[serde(default)]
    pub judge: JudgeConfig,
}

/// `canary.judge:`
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "JudgeInput")]
pub struct JudgeConfig {
    /// `off`, `advisory` (a fail pauses the rollout once, for a person) or
    /// `enforce` (a fail is a critical breach; only a pass lets
    /// auto-progression advance).
    pub mode: JudgeMode,
    /// The false-alarm rate promised for a canary within both tolerances.
    pub alpha: f64,
    /// How much worse the canary's failure rate may be (0.2: 1.2× production's).
    pub failure_tolerance: f64,
    /// How much more often the canary may be the slower of a concurrent pair (0.05: 55 %).
    pub latency_tolerance: f64,
    /// Observations needed before a pass.
    pub min_samples: u64,
}

pub use crate::domain::verdicts::JudgeMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgeInput {
    #[serde(default = "judge_off")]
    mode: JudgeMode,
    #[serde(default = "default_alpha")]
    alpha: f64,
    #[serde(default = "default_failure_tolerance")]
    failure_tolerance: f64,
    #[serde(default = "default_latency_tolerance")]
    latency_tolerance: f64,
    #[serde(default = "default_min_samples")]
    min_samples: u64,
}

fn judge_off() -> JudgeMode {
    JudgeMode::Off
}
fn default_alpha() -> f64 {
    0.01
}
fn default_failure_tolerance() -> f64 {
    0.2
}
fn default_latency_tolerance() -> f64 {
    0.05
}
fn default_min_samples() -> u64 {
    100
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            mode: judge_off(),
            alpha: default_alpha(),
            failure_tolerance: default_failure_tolerance(),
            latency_tolerance: default_latency_tolerance(),
            min_samples: default_min_samples(),
        }
    }
}

impl TryFrom<JudgeInput> for JudgeConfig {
    type Error = String;

    fn try_from(input: JudgeInput) -> Result<Self, Self::Error> {
        if !(input.alpha > 0.0 && input.alpha <= 0.2) {
            return Err(format!(
                "`alpha` is the false-alarm rate, above 0 and at most 0.2 (0.01 is usual), got {}",
                input.alpha
            ));
        }
        if !(input.failure_tolerance >= 0.0 && input.failure_tolerance.is_finite()) {
            return Err(format!(
                "`failure_tolerance` is a fraction of production's failure rate, 0 or more (0.2 allows 1.2×), got {}",
                input.failure_tolerance
            ));
        }
        if !(0.0..0.5).contains(&input.latency_tolerance) {
            return Err(format!(
                "`latency_tolerance` is between 0 and 0.5 (0.05 allows the canary to be the slower of a pair 55 % of the time), got {}",
                input.latency_tolerance
            ));
        }
        Ok(JudgeConfig {
            mode: input.mode,
            alpha: input.alpha,
            failure_tolerance: input.failure_tolerance,
            latency_tolerance: input.latency_tolerance,
            min_samples: input.min_samples,
        })
    }
}

impl JudgeConfig {
    /// The judge's settings.
    pub fn settings(&self) -> crate::domain::judge::JudgeSettings {
        crate::domain::judge::JudgeSettings {
            alpha: self.alpha,
            failure_tolerance: self.failure_tolerance,
            latency_tolerance: self.latency_tolerance,
            min_samples: self.min_samples,
        }
    }
}

/// `canary.analysis:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Fewer canary requests than this in the last minute is `NO_DATA`.
    pub min_requests: u64,
    /// Within this fraction of a threshold (on the safe side) a check is `WATCH`.
    pub watch_margin: Rate,
    /// How long missing data is tolerated before `on_long_no_data` applies.
    pub no_data_timeout: ConfigDuration,
    /// `hold` (keep the step and say why) or `rollback`.
    pub on_long_no_data: OnLongNoData,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            min_requests: 20,
            watch_margin: Rate(0.1),
            no_data_timeout: ConfigDuration(Duration::from_secs(600)),
            on_long_no_data: OnLongNoData::Hold,
        }
    }
}

/// What a long stretch of missing data leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLongNoData {
    /// Keep the current step and say why.
    Hold,
    /// Roll the canary back.
    Rollback,
}

impl CanaryConfig {
    /// The rules the deployment state machine follows, with what a
    /// promotion does (which the upstreams and hooks decide).
    pub fn rules(
        &self,
        promotion: crate::domain::roles::Promotion,
        undo_window: Duration,
        test_runs: Vec<String>,
    ) -> crate::domain::deployment::Rules {
        crate::domain::deployment::Rules {
            test_runs,
            shadow: None,
            promotion,
            undo_window_ms: duration_ms(undo_window),
            traffic_steps: self.traffic_steps.shares().to_vec(),
            auto_progression: self.auto_progression.enabled,
            wait_ms: duration_ms(self.auto_progression.wait_time.0),
            auto_rollback: self.auto_rollback.enabled,
            no_data_timeout_ms: duration_ms(self.analysis.no_data_timeout.0),
            on_long_no_data: match self.analysis.on_long_no_data {
                OnLongNoData::Hold => crate::domain::deployment::NoDataAction::Hold,
                OnLongNoData::Rollback => crate::domain::deployment::NoDataAction::Rollback,
            },
        }
    }

    /// The configured safety checks, then the auto-progression thresholds as
    /// implicit critical checks: a canary past them is not merely held but
    /// rolled back (when auto-rollback is armed), so a canary that fails its
    /// requests never stays in front of users.
    pub fn check_specs(&self) -> Vec<crate::domain::analysis::CheckSpec> {
        use crate::domain::analysis::CheckSpec;
        let mut specs: Vec<CheckSpec> = self
            .safety_checks
            .iter()
            .map(|check| CheckSpec {
                name: check.name.clone(),
                metric: check.metric.clone(),
                comparator: check.comparator,
                threshold: check.threshold,
                alert_level: check.alert_level,
                // Set by `Config::check_specs`, which sees metrics.custom.
                has_source: true,
                fast_window_secs: check.fast_window.map(|window| window.0),
            })
            .collect();
        let thresholds = &self.auto_progression.thresholds;
        let implicit = [
            (
                "Latency threshold",
                "p95_latency_ms",
                Comparator::Max,
                duration_ms(thresholds.max_latency.0) as f64,
            ),
            (
                "Success rate threshold",
                "success_rate",
                Comparator::Min,
                thresholds.min_success_rate.0,
            ),
            (
                "Error rate threshold",
                "error_rate",
                Comparator::Max,
                thresholds.max_error_rate.0,
            ),
        ];
        specs.extend(
            implicit
                .into_iter()
                .map(|(name, metric, comparator, threshold)| CheckSpec {
                    name: name.to_owned(),
                    metric: metric.to_owned(),
                    comparator,
                    threshold,
                    alert_level: AlertLevel::Critical,
                    has_source: true,
                    fast_window_secs: thresholds.fast_window.map(|window| window.0),
                }),
        );
        specs
    }

    /// The rules a rollout follows, as shown to anyone who may watch.
    fn rollout_settings(
        &self,
        proxy: &ProxyConfig,
        rules: crate::domain::deployment::Rules,
    ) -> canary_shared::RolloutSettings {
        let stickiness = &proxy.stickiness;
        canary_shared::RolloutSettings {
            traffic_steps: rules.traffic_steps,
            auto_progression: rules.auto_progression,
            wait_ms: rules.wait_ms,
            auto_rollback: rules.auto_rollback,
            min_requests: self.analysis.min_requests,
            watch_margin: self.analysis.watch_margin.0,
            no_data_timeout_ms: rules.no_data_timeout_ms,
            on_long_no_data: match self.analysis.on_long_no_data {
                OnLongNoData::Hold => "hold",
                OnLongNoData::Rollback => "rollback",
            }
            .to_owned(),
            judge: match self.judge.mode {
                JudgeMode::Off => "off",
                JudgeMode::Advisory => "advisory",
                JudgeMode::Enforce => "enforce",
            }
            .to_owned(),
            judge_alpha: self.judge.alpha,
            judge_failure_tolerance: self.judge.failure_tolerance,
            judge_latency_tolerance: self.judge.latency_tolerance,
            stickiness: match stickiness.mode {
                StickinessMode::Cookie => format!(
                    "cookie {} for {}",
                    stickiness.cookie_name,
                    crate::domain::deployment::human_duration(duration_ms(
                        stickiness.cookie_max_age.0
                    ))
                ),
                StickinessMode::Header => format!("header {}", stickiness.header.0),
                StickinessMode::None => "none".to_owned(),
            },
            override_header: proxy
                .side_override
                .as_ref()
                .map(|side_override| side_override.header.0.clone()),
            // Filled in by `Config::rollout_settings`, which sees the upstreams and hooks.
            promotion: String::new(),
            promotion_warning: None,
        }
    }

    /// How the checks are judged.
    pub fn analysis_settings(&self) -> crate::domain::analysis::AnalysisSettings {
        crate::domain::analysis::AnalysisSettings {
            min_requests: self.analysis.min_requests,
            watch_margin: self.analysis.watch_margin.0,
            shadow: false,
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a valid configuration.
    #[error("{}", format_invalid(file.as_deref(), *line, *column, field, message))]
    Invalid {
        /// The file, when it came from one.
        file: Option<PathBuf>,
        /// 1-based line of the value at fault, when known.
        line: Option<usize>,
        /// 1-based column of the value at fault, when known.
        column: Option<usize>,
        /// The field path (`canary.traffic_steps`), when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
}

fn format_invalid(
    file: Option<&Path>,
    line: Option<usize>,
    column: Option<usize>,
    field: &Option<String>,
    message: &str,
) -> String {
    let mut out = file.map_or_else(|| "<config>".to_owned(), |file| file.display().to_string());
    if let Some(line) = line {
        out.push_str(&format!(":{line}"));
        if let Some(column) = column {
            out.push_str(&format!(":{column}"));
        }
    }
    out.push_str(": ");
    if let Some(field) = field {
        out.push_str(&format!("{field}: "));
    }
    out.push_str(message);
    out
}

impl Config {
    /// Reads and validates the file at `path`.
    ///
    /// Relative paths in it (`server.data_dir`, `server.assets_dir`, the
    /// TLS files, a hook program given as a path) are taken from the
    /// file's folder, so `canary serve --config /etc/canary/canary-config.yaml`
    /// means the same from any working directory. The built-in default
    /// `assets_dir` (the repository's build output) stays relative to the
    /// working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_yaml(&text).map_err(|err| match err {
            ConfigError::Invalid {
                line,
                column,
                field,
                message,
                ..
            } => ConfigError::Invalid {
                file: Some(path.to_owned()),
                line,
                column,
                field,
                message,
            },
            other => other,
        })?;
        let folder = match path.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        config.resolve_paths(folder);
        Ok(config)
    }

    /// Makes the relative paths of the file relative to `folder`.
    fn resolve_paths(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && folder != Path::new(".") {
                *path = folder.join(&*path);
            }
        };
        resolve(&mut self.server.data_dir);
        if self.server.assets_dir != Path::new(ServerConfig::DEFAULT_ASSETS_DIR) {
            resolve(&mut self.server.assets_dir);
        }
        let oidc_ca = self
            .auth
            .as_mut()
            .and_then(|auth| auth.oidc.as_mut())
            .and_then(|oidc| oidc.ca_file.as_mut());
        for ca_file in [
            &mut self.upstreams.production.ca_file,
            &mut self.upstreams.canary.ca_file,
        ]
        .into_iter()
        .flatten()
        .chain(oidc_ca)
        {
            resolve(ca_file);
        }
        for tls in [&mut self.server.tls, &mut self.proxy.tls]
            .into_iter()
            .flatten()
        {
            resolve(&mut tls.cert_file);
            resolve(&mut tls.key_file);
        }
        if let Some(nginx) = &mut self.router.nginx {
            resolve(&mut nginx.include_file);
        }
        if let Some(kubeconfig) = self
            .router
            .gateway_api
            .as_mut()
            .and_then(|gateway| gateway.kubeconfig.as_mut())
        {
            resolve(kubeconfig);
        }
        for hook in [
            &mut self.hooks.deploy,
            &mut self.hooks.health_check,
            &mut self.hooks.promote,
            &mut self.hooks.rollback,
        ]
        .into_iter()
        .flatten()
        {
            // A bare name is looked up on PATH; only a path is resolved.
            let program = &mut hook.command.0[0];
            if program.contains('/') && Path::new(program.as_str()).is_relative() {
                let mut path = PathBuf::from(program.as_str());
                resolve(&mut path);
                *program = path.to_string_lossy().into_owned();
            }
        }
    }

    /// An error at the value under `keys` of the config `file` (read again
    /// to place it; without a file, or when the key is not written in it,
    /// the error names the field only).
    pub fn error_at(file: Option<&Path>, keys: &[&str], message: String) -> ConfigError {
        let text = file
            .and_then(|file| std::fs::read_to_string(file).ok())
            .unwrap_or_default();
        let mut error = invalid_at(&text, keys, message);
        if let ConfigError::Invalid { file: at, .. } = &mut error {
            *at = file.map(Path::to_owned);
        }
        error
    }

    /// Parses and validates configuration text. Pure: no I/O.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        check_nesting(text)?;
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let segments: Vec<PathSegment> = err
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => {
                        Some(PathSegment::Key(key.clone()))
                    }
                    serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                    _ => None,
                })
                .collect();
            let path = err.path().to_string();
            let inner = err.into_inner();
            let mut message = clean_message(&inner.to_string(), &path);
            if message.starts_with("unknown field `override_header`") {
                message = "`override_header` is now the `override` section, off unless it says who \
                           may force a side: override: { header: x-canary, trusted_networks: [\"10.0.0.0/8\"] }"
                    .to_owned();
            }
            // serde_yaml places errors raised by a value's own validation at
            // the start of the enclosing mapping, so the value is looked up by
            // its path instead, falling back to serde_yaml's position.
            let point_at_key = message.starts_with("unknown field") || message.starts_with("`override_header`");
            let (line, column) = locate(text, &segments, point_at_key)
                .or_else(|| inner.location().map(|at| (at.line(), at.column())))
                .map_or((None, None), |(line, column)| (Some(line), Some(column)));
            ConfigError::Invalid {
                file: None,
                line,
                column,
                field: (!segments.is_empty()).then_some(path),
                message,
            }
        })?;
        config.check_across_sections(text)?;
        Ok(config)
    }
}

/// serde_yaml decorates its messages with the path and the position, which
/// are reported separately, so both are cut from the message.
fn clean_message(message: &str, path: &str) -> String {
    let message = match message.find(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') && path.starts_with(prefix) => rest,
        _ => message,
    };
    message.to_owned()
}

#[cfg(test)]
mod tests;
