//! `canary-config.yaml`: the typed configuration and its validation.
//!
//! Parsing is pure ([`Config::from_yaml`]); reading the file is separate
//! ([`Config::load`]). Every value is validated while it is deserialized, so
//! every error carries the line, column and field path of the value at fault.
//! The seed's `canary:` block loads unchanged; every other section has defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use canary_shared::{self as wire, AlertLevel, CanaryShare, Comparator};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::analysis::BuiltInMetric;

mod access;
mod metrics;

pub use crate::config::access::{
    AllowedOrigin, AuthConfig, IdentityName, NotificationConfig, NotifyFormat, NotifyUrl,
    PasswordHash, SessionConfig, TlsConfig, TokenConfig, TokenHash, UserConfig,
};
pub use crate::config::metrics::{
    CustomMetricConfig, MetricSource, MetricsConfig, PrometheusSourceConfig, ScrapeSourceConfig,
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
    /// Commands run at each stage of a rollout.
    #[serde(default)]
    pub hooks: HooksConfig,
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
        }
    }
}

/// `upstreams:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamsConfig {
    /// The version serving users today.
    pub production: UpstreamConfig,
    /// The new version.
    pub canary: UpstreamConfig,
}

impl Default for UpstreamsConfig {
    fn default() -> Self {
        let upstream = |port: u16| UpstreamConfig {
            url: UpstreamUrl::from_str(&format!("http://127.0.0.1:{port}"))
                .expect("a loopback URL is valid"),
            version: None,
            health_check: HealthCheckConfig::default(),
        };
        UpstreamsConfig {
            production: upstream(9001),
            canary: upstream(9002),
        }
    }
}

impl UpstreamsConfig {
    /// The upstream of `side`.
    pub fn of(&self, side: wire::Side) -> &UpstreamConfig {
        match side {
            wire::Side::Production => &self.production,
            wire::Side::Canary => &self.canary,
        }
    }
}

/// `upstreams.production:` or `upstreams.canary:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, `http://host:port`.
    pub url: UpstreamUrl,
    /// Version label shown in the console.
    #[serde(default)]
    pub version: Option<String>,
    /// Active health checks.
    #[serde(default)]
    pub health_check: HealthCheckConfig,
}

/// `upstreams.*.health_check:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Path requested with `GET`; any 2xx is healthy.
    pub path: HttpPath,
    /// Time between checks.
    pub interval: ConfigDuration,
    /// Time a check may take before it counts as failed.
    pub timeout: ConfigDuration,
    /// Consecutive passes that make an upstream healthy.
    pub healthy_threshold: Threshold,
    /// Consecutive failures that make an upstream unhealthy.
    pub unhealthy_threshold: Threshold,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: HttpPath("/healthz".to_owned()),
            interval: ConfigDuration(Duration::from_secs(2)),
            timeout: ConfigDuration(Duration::from_secs(1)),
            healthy_threshold: Threshold(2),
            unhealthy_threshold: Threshold(3),
        }
    }
}

/// `hooks:` — the team's own scripts, run at each stage. A hook left out is
/// skipped (the health check then requests the canary's health path).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Builds and deploys the canary version.
    pub deploy: Option<HookConfig>,
    /// Checks the new version before it gets traffic.
    pub health_check: Option<HookConfig>,
    /// Makes the canary version production.
    pub promote: Option<HookConfig>,
    /// Undoes the canary deployment.
    pub rollback: Option<HookConfig>,
    /// When the deploy or health-check hook is left out, wait for the deploy
    /// script to report through `POST /admin/canary/webhook/{event}` instead
    /// of using the default.
    pub wait_for_webhooks: bool,
}

/// One hook: a program and its arguments (no shell), with a time limit.
///
/// Arguments may use `{image_tag}`, `{share}`, `{production_version}` and
/// `{canary_version}`; the same values are in the environment as
/// `CANARY_IMAGE_TAG`, `CANARY_SHARE`, `CANARY_PRODUCTION_VERSION`,
/// `CANARY_CANARY_VERSION`, with `CANARY_HOOK` naming the hook.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The program and its arguments.
    pub command: HookCommand,
    /// How long it may run before it is killed and counted as failed.
    #[serde(default = "default_hook_timeout")]
    pub timeout: ConfigDuration,
}

fn default_hook_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}

/// A non-empty argument vector.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct HookCommand(pub Vec<String>);

impl TryFrom<Vec<String>> for HookCommand {
    type Error = String;

    fn try_from(args: Vec<String>) -> Result<Self, Self::Error> {
        match args.first() {
            None => Err("a hook command needs at least the program, as a list: [\"scripts/deploy.sh\", \"{image_tag}\"]".to_owned()),
            Some(program) if program.trim().is_empty() => Err("the hook's program is empty".to_owned()),
            Some(_) => Ok(HookCommand(args)),
        }
    }
}

/// `proxy:` — the built-in traffic-splitting reverse proxy.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// How a client keeps going to the same side.
    pub stickiness: StickinessConfig,
    /// Who may pick a side with a request header; off unless configured.
    #[serde(rename = "override")]
    pub side_override: Option<OverrideConfig>,
    /// Which `Host` the upstream sees.
    pub host_header: HostHeader,
    /// Time a client has to send a request head, from when its connection is
    /// ready for one; an idle keep-alive connection is closed after it too.
    pub client_header_timeout: ClientTimeout,
    /// A connection with no bytes in either direction for this long is closed.
    pub client_idle_timeout: ClientTimeout,
    /// Time to connect to an upstream.
    pub upstream_connect_timeout: ConfigDuration,
    /// Time from sending a request to an upstream until its response head.
    pub upstream_response_timeout: ConfigDuration,
    /// Largest request body accepted; larger ones get 413.
    pub max_request_body: ByteSize,
    /// Requests in flight per side beyond which new ones get 503 at once.
    pub max_in_flight_per_side: u32,
    /// Retry a request without a body on production when the canary refuses
    /// the connection (nothing was sent, so the retry cannot repeat an effect).
    pub retry_refused_canary: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            stickiness: StickinessConfig::default(),
            side_override: None,
            host_header: HostHeader::Preserve,
            client_header_timeout: ClientTimeout(Duration::from_secs(10)),
            client_idle_timeout: ClientTimeout(Duration::from_secs(60)),
            upstream_connect_timeout: ConfigDuration(Duration::from_secs(2)),
            upstream_response_timeout: ConfigDuration(Duration::from_secs(30)),
            max_request_body: ByteSize(10 * 1024 * 1024),
            max_in_flight_per_side: 1024,
            retry_refused_canary: true,
        }
    }
}

/// `proxy.override:` — lets testers force a side with a request header
/// (`always` or `canary`: the canary, `never` or `production`: production),
/// but only from trusted networks or with a token, and never to a canary
/// whose share is 0 %.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "OverrideInput")]
pub struct OverrideConfig {
    /// The header that picks the side.
    pub header: HeaderName,
    /// Clients whose address is in one of these may use the header.
    pub trusted_networks: Vec<IpNetwork>,
    /// Clients that send the token whose SHA-256 this is (in `token_header`) may use it too.
    pub token_sha256: Option<TokenDigest>,
    /// The header that carries the token.
    pub token_header: HeaderName,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideInput {
    #[serde(default = "default_override_header")]
    header: HeaderName,
    #[serde(default)]
    trusted_networks: Vec<IpNetwork>,
    #[serde(default)]
    token_sha256: Option<TokenDigest>,
    #[serde(default = "default_override_token_header")]
    token_header: HeaderName,
}

fn default_override_header() -> HeaderName {
    HeaderName("x-canary".to_owned())
}

fn default_override_token_header() -> HeaderName {
    HeaderName("x-canary-token".to_owned())
}

impl TryFrom<OverrideInput> for OverrideConfig {
    type Error = String;

    fn try_from(input: OverrideInput) -> Result<Self, Self::Error> {
        if input.trusted_networks.is_empty() && input.token_sha256.is_none() {
            return Err(
                "say who may force a side: `trusted_networks` (such as [\"10.0.0.0/8\"]), \
                 `token_sha256` (the SHA-256 of a token testers send in `token_header`), or both; \
                 leave the section out to turn the override off"
                    .to_owned(),
            );
        }
        if input.header == input.token_header {
            return Err("`header` and `token_header` must be different headers".to_owned());
        }
        Ok(OverrideConfig {
            header: input.header,
            trusted_networks: input.trusted_networks,
            token_sha256: input.token_sha256,
            token_header: input.token_header,
        })
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNetwork {
    /// The network's first address (host bits cleared).
    pub address: std::net::IpAddr,
    /// How many leading bits must match.
    pub prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` is inside this network; an IPv4 address mapped into IPv6
    /// (`::ffff:10.1.2.3`) counts as the IPv4 address.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        use std::net::IpAddr;
        let invalid = || {
            format!(
                "invalid network {text:?}: write an address or a network in CIDR notation, such as \"10.0.0.0/8\" or \"fd00::/8\""
            )
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max_prefix,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max_prefix)
                .ok_or_else(invalid)?,
        };
        let network = IpNetwork { address, prefix };
        // Host bits set (`10.1.2.3/8`) are almost always a typo for a narrower network.
        let cleared = match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        };
        if cleared != address {
            return Err(format!(
                "invalid network {text:?}: it has host bits set; did you mean \"{cleared}/{prefix}\"?"
            ));
        }
        Ok(network)
    }
}

/// The SHA-256 of a secret, as 64 hex digits; safe to keep in a config and to show.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TokenDigest(pub [u8; 32]);

impl TryFrom<String> for TokenDigest {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let text = text.trim();
        let invalid = || {
            "invalid SHA-256: write 64 hex digits, for example from `printf %s \"$TOKEN\" | sha256sum`"
                .to_owned()
        };
        if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut digest = [0u8; 32];
        for (index, byte) in digest.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).map_err(|_| invalid())?;
        }
        Ok(TokenDigest(digest))
    }
}

impl fmt::Display for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A client-side proxy timeout: at least 100 ms, since a shorter one (or 0)
/// would close connections before any client could send a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClientTimeout(pub Duration);

/// The shortest [`ClientTimeout`].
pub const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(100);

impl TryFrom<String> for ClientTimeout {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let duration = parse_duration(&text)?;
        if duration < MIN_CLIENT_TIMEOUT {
            return Err(format!(
                "{text:?} is too short: a client needs at least 100ms to send a request (10s is usual)"
            ));
        }
        Ok(ClientTimeout(duration))
    }
}

/// `proxy.stickiness:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StickinessConfig {
    /// `cookie`, `header` or `none`.
    pub mode: StickinessMode,
    /// The cookie that remembers a browser's bucket.
    pub cookie_name: String,
    /// How long the cookie lives.
    pub cookie_max_age: ConfigDuration,
    /// In `header` mode, the request header whose value is hashed (for example a user id).
    pub header: HeaderName,
}

impl Default for StickinessConfig {
    fn default() -> Self {
        StickinessConfig {
            mode: StickinessMode::Cookie,
            cookie_name: "canary_bucket".to_owned(),
            cookie_max_age: ConfigDuration(Duration::from_secs(24 * 3600)),
            header: HeaderName("x-user-id".to_owned()),
        }
    }
}

/// How a client is kept on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StickinessMode {
    /// A cookie holds the client's bucket; clients without one get one.
    Cookie,
    /// The bucket is a hash of a request header; without the header, a fresh draw.
    Header,
    /// Every request is drawn afresh.
    None,
}

/// Which `Host` header the upstream sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostHeader {
    /// The client's own `Host` (the usual choice behind a virtual host).
    Preserve,
    /// The upstream URL's host and port.
    Upstream,
}

/// A valid HTTP header name, lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderName(pub String);

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map(|name| HeaderName(name.as_str().to_owned()))
            .map_err(|_| format!("invalid header name {name:?}"))
    }
}

/// A size in bytes, written as `10MiB`, `512KiB`, `1GiB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeInput")]
pub struct ByteSize(pub u64);

/// A size as written: a number of bytes or a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeInput {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeInput> for ByteSize {
    type Error = String;

    fn try_from(input: SizeInput) -> Result<Self, Self::Error> {
        let text = match input {
            SizeInput::Bytes(bytes) => return Ok(ByteSize(bytes)),
            SizeInput::Text(text) => text,
        };
        let invalid = || {
            format!(
                "invalid size {text:?}: write bytes or a number with KiB, MiB or GiB, such as \"10MiB\""
            )
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let amount: u64 = trimmed[..split].parse().map_err(|_| invalid())?;
        let unit: u64 = match trimmed[split..].trim() {
            "" | "B" => 1,
            "KiB" | "KB" | "K" => 1 << 10,
            "MiB" | "MB" | "M" => 1 << 20,
            "GiB" | "GB" | "G" => 1 << 30,
            _ => return Err(invalid()),
        };
        amount.checked_mul(unit).map(ByteSize).ok_or_else(invalid)
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
    /// The rules the deployment state machine follows.
    pub fn rules(&self) -> crate::domain::deployment::Rules {
        crate::domain::deployment::Rules {
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
                }),
        );
        specs
    }

    /// The rules a rollout follows, as shown to anyone who may watch.
    pub fn rollout_settings(&self, proxy: &ProxyConfig) -> canary_shared::RolloutSettings {
        let rules = self.rules();
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
        }
    }

    /// How the checks are judged.
    pub fn analysis_settings(&self) -> crate::domain::analysis::AnalysisSettings {
        crate::domain::analysis::AnalysisSettings {
            min_requests: self.analysis.min_requests,
            watch_margin: self.analysis.watch_margin.0,
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `canary.auto_progression:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoProgressionConfig {
    /// Whether green metrics advance the rollout.
    pub enabled: bool,
    /// How long checks must stay green before the next step.
    pub wait_time: ConfigDuration,
    /// Implicit checks that apply to every rollout.
    pub thresholds: ThresholdsConfig,
}

/// `canary.auto_progression.thresholds:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// Highest acceptable p95 latency.
    pub max_latency: ConfigDuration,
    /// Lowest acceptable success rate, `0..=1`.
    pub min_success_rate: Rate,
    /// Highest acceptable error rate, `0..=1`.
    pub max_error_rate: Rate,
}

/// `canary.auto_rollback:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollbackConfig {
    /// Whether a critical breach rolls back without a human.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for AutoRollbackConfig {
    fn default() -> Self {
        AutoRollbackConfig { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// One entry of `canary.safety_checks:`, validated.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "SafetyCheckInput")]
pub struct SafetyCheckConfig {
    /// Shown to people.
    pub name: String,
    /// The metric read.
    pub metric: String,
    /// Upper or lower limit, given or implied by the metric.
    pub comparator: Comparator,
    /// The limit.
    pub threshold: f64,
    /// What a breach leads to.
    pub alert_level: AlertLevel,
}

/// A safety check as written, before its comparator is settled.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyCheckInput {
    name: String,
    metric: String,
    threshold: f64,
    alert_level: AlertLevel,
    #[serde(default)]
    comparator: Option<Comparator>,
}

impl TryFrom<SafetyCheckInput> for SafetyCheckConfig {
    type Error = String;

    fn try_from(input: SafetyCheckInput) -> Result<Self, Self::Error> {
        if input.name.trim().is_empty() {
            return Err("a safety check needs a non-empty `name`".to_owned());
        }
        if !input.threshold.is_finite() {
            return Err(format!(
                "check {:?}: `threshold` must be a finite number",
                input.name
            ));
        }
        let implied = implied_comparator(&input.metric);
        let comparator = match (implied, input.comparator) {
            (Some((implied, true)), Some(given)) if given != implied => {
                return Err(format!(
                    "check {:?}: metric `{}` is always a {}imum, so `comparator: {}` cannot apply",
                    input.name,
                    input.metric,
                    comparator_name(implied),
                    comparator_name(given),
                ));
            }
            (_, Some(given)) => given,
            (Some((implied, _)), None) => implied,
            (None, None) => {
                return Err(format!(
                    "check {:?}: metric `{}` does not say whether the threshold is a maximum \
                     or a minimum; add `comparator: max` or `comparator: min`",
                    input.name, input.metric
                ));
            }
        };
        if matches!(input.metric.as_str(), "success_rate" | "error_rate")
            && !(0.0..=1.0).contains(&input.threshold)
        {
            return Err(format!(
                "check {:?}: `{}` is a rate between 0 and 1, so `threshold: {}` cannot be reached",
                input.name, input.metric, input.threshold
            ));
        }
        Ok(SafetyCheckConfig {
            name: input.name,
            metric: input.metric,
            comparator,
            threshold: input.threshold,
            alert_level: input.alert_level,
        })
    }
}

fn comparator_name(comparator: Comparator) -> &'static str {
    match comparator {
        Comparator::Max => "max",
        Comparator::Min => "min",
    }
}

/// The comparator a metric's name implies, and whether it is fixed (a
/// built-in metric) or only a default (a custom metric named by convention).
fn implied_comparator(metric: &str) -> Option<(Comparator, bool)> {
    let built_in = BuiltInMetric::from_name(metric).is_some();
    if metric.ends_with("success_rate") {
        Some((Comparator::Min, built_in))
    } else if metric.ends_with("error_rate")
        || metric.ends_with("_latency_ms")
        || metric.ends_with("_ms")
        || metric.ends_with("_seconds")
    {
        Some((Comparator::Max, built_in))
    } else {
        None
    }
}

// === Validated scalars ===

/// Serializes newtypes the way they are written in the file.
macro_rules! serialize_as {
    ($type:ty, |$value:ident| $body:expr) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let $value = self;
                $body.serialize(serializer)
            }
        }
    };
}

serialize_as!(ConfigDuration, |value| format_duration(value.0));
serialize_as!(ClientTimeout, |value| format_duration(value.0));
serialize_as!(IpNetwork, |value| value.to_string());
serialize_as!(TokenDigest, |value| value.to_string());
serialize_as!(Rate, |value| value.0);
serialize_as!(Threshold, |value| value.0);
serialize_as!(HttpPath, |value| value.0.as_str());
serialize_as!(UpstreamUrl, |value| value.to_string());
serialize_as!(TrafficSteps, |value| value
    .0
    .iter()
    .map(|share| share.percent())
    .collect::<Vec<f64>>());
serialize_as!(HookCommand, |value| &value.0);
serialize_as!(HeaderName, |value| value.0.as_str());
serialize_as!(ByteSize, |value| value.0);

/// `24h`, `90s`, `1500ms`: the largest unit that writes the duration exactly.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A duration written as `24h`, `1000ms`, `1h30m`, `2s` (units `ms`, `s`, `m`, `h`, `d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ConfigDuration(pub Duration);

impl TryFrom<String> for ConfigDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        parse_duration(&text).map(ConfigDuration)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Parses `24h`, `1000ms`, `1h30m`; a bare number is refused because its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: write a number with a unit, such as \"500ms\", \"30s\", \"5m\", \"24h\" or \"1h30m\""
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits_end].parse().map_err(|_| invalid())?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_millis: u64 = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_end..];
        let millis = amount.checked_mul(unit_millis).ok_or_else(invalid)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A rate in `0..=1`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Rate(pub f64);

impl TryFrom<f64> for Rate {
    type Error = String;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&value) {
            Ok(Rate(value))
        } else {
            Err(format!(
                "a rate must be between 0 and 1 (0.85 means 85 %), got {value}"
            ))
        }
    }
}

/// A count of consecutive results, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Threshold(pub u32);

impl TryFrom<u32> for Threshold {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if value >= 1 {
            Ok(Threshold(value))
        } else {
            Err("a threshold must be at least 1".to_owned())
        }
    }
}

/// An absolute URL path starting with `/`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpPath(pub String);

impl TryFrom<String> for HttpPath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, Self::Error> {
        let valid = path.starts_with('/')
            && path.parse::<hyper::http::uri::PathAndQuery>().is_ok()
            && !path.contains(char::is_whitespace);
        if valid {
            Ok(HttpPath(path))
        } else {
            Err(format!("invalid path {path:?}: it must start with '/'"))
        }
    }
}

/// An upstream's base URL: `http://host:port`, with an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UpstreamUrl(hyper::Uri);

impl UpstreamUrl {
    /// The URL as parsed.
    pub fn uri(&self) -> &hyper::Uri {
        &self.0
    }

    /// This URL with `path` appended to its own path.
    pub fn join(&self, path: &str) -> String {
        let base = self.0.to_string();
        format!("{}{path}", base.trim_end_matches('/'))
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_string().trim_end_matches('/'))
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: hyper::Uri = text
            .parse()
            .map_err(|err| format!("invalid URL {text:?}: {err}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "invalid URL {text:?}: write it as http://host:port (https upstreams are not supported yet)"
            ));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("invalid URL {text:?}: it has no host"));
        }
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            // Not echoed: the part before `@` is a user name and password.
            return Err(format!(
                "invalid URL http://…@{}: credentials in the URL would be sent as part of the Host header and shown in logs; remove the `user:password@` part",
                uri.authority().map_or("", |authority| authority.host())
            ));
        }
        if uri.query().is_some() {
            return Err(format!(
                "invalid URL {text:?}: a base URL cannot have a query"
            ));
        }
        Ok(UpstreamUrl(uri))
    }
}

impl TryFrom<String> for UpstreamUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// `canary.traffic_steps`: strictly increasing shares within 1–100, ending at 100.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<f64>")]
pub struct TrafficSteps(Vec<CanaryShare>);

impl TrafficSteps {
    /// The steps in order; the last is 100 %.
    pub fn shares(&self) -> &[CanaryShare] {
        &self.0
    }
}

impl TryFrom<Vec<f64>> for TrafficSteps {
    type Error = String;

    fn try_from(values: Vec<f64>) -> Result<Self, Self::Error> {
        if values.is_empty() {
            return Err(
                "traffic_steps needs at least one step, and the last must be 100".to_owned(),
            );
        }
        let mut shares = Vec::with_capacity(values.len());
        for (index, &value) in values.iter().enumerate() {
            let share = CanaryShare::from_percent(value)
                .map_err(|err| format!("step {} ({value}): {err}", index + 1))?;
            if share == CanaryShare::ZERO {
                return Err(format!(
                    "step {} is 0: every step must send the canary some traffic (1 to 100)",
                    index + 1
                ));
            }
            if let Some(&previous) = shares.last()
                && share <= previous
            {
                return Err(format!(
                    "steps must be strictly increasing, but step {} ({value}) follows {}",
                    index + 1,
                    previous.percent()
                ));
            }
            shares.push(share);
        }
        if shares.last() != Some(&CanaryShare::FULL) {
            return Err(format!(
                "the last step must be 100 so a rollout can finish, got {}",
                values[values.len() - 1]
            ));
        }
        Ok(TrafficSteps(shares))
    }
}

// === Loading ===

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
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text).map_err(|err| match err {
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
        })
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

    /// The rules that tie one section to another, checked here so that
    /// `canary check` refuses everything `canary serve` would.
    fn check_across_sections(&self, text: &str) -> Result<(), ConfigError> {
        let admin = self.server.admin_listen;
        if self.auth.is_none() && !admin.ip().is_loopback() {
            let path = [
                PathSegment::Key("server".to_owned()),
                PathSegment::Key("admin_listen".to_owned()),
            ];
            let (line, column) = locate(text, &path, false)
                .map_or((None, None), |(line, column)| (Some(line), Some(column)));
            return Err(ConfigError::Invalid {
                file: None,
                line,
                column,
                field: Some("server.admin_listen".to_owned()),
                message: format!(
                    "{admin} is reachable from other machines, but there is no auth section: anyone who \
                     can reach it could start, stop or promote rollouts. Add an auth section with users \
                     or tokens (`canary hash-password`, `canary new-token`), or listen on 127.0.0.1"
                ),
            });
        }
        Ok(())
    }
}

/// Nesting deeper than this is refused before the config is parsed: a real
/// config nests five levels, and a deeply nested document would take the
/// parser (and dropping what it built) into unbounded recursion and time.
pub const MAX_NESTING: usize = 32;

/// The error for a document nested too deeply, at a 1-based line and a 0-based column.
fn too_deep(line: usize, column: usize) -> ConfigError {
    ConfigError::Invalid {
        file: None,
        line: Some(line),
        column: Some(column + 1),
        field: None,
        message: format!(
            "nested more than {MAX_NESTING} levels deep; a canary config needs fewer than ten"
        ),
    }
}

/// Refuses a document nested deeper than [`MAX_NESTING`], at the first
/// collection past it, reading only up to there.
fn check_nesting(text: &str) -> Result<(), ConfigError> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let mut depth = 0_usize;
    loop {
        match parser.next_token() {
            Ok((yaml_rust2::Event::StreamEnd, _)) => return Ok(()),
            // The scanner reads flow collections (`[[[…`) ahead of the events
            // and stops at its own limit, deeper than ours.
            Err(err) if err.info().contains("recursion limit") => {
                return Err(too_deep(err.marker().line(), err.marker().col()));
            }
            // Other syntax errors are reported, with their place, by the full parse.
            Err(_) => return Ok(()),
            Ok((
                yaml_rust2::Event::SequenceStart(..) | yaml_rust2::Event::MappingStart(..),
                mark,
            )) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(mark.line(), mark.col()));
                }
            }
            Ok((yaml_rust2::Event::SequenceEnd | yaml_rust2::Event::MappingEnd, _)) => {
                depth = depth.saturating_sub(1);
            }
            Ok(_) => {}
        }
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

// === Locating a field path in the text ===

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
enum PathSegment {
    Key(String),
    Index(usize),
}

/// A YAML node with the 1-based line and column where it starts.
#[derive(Debug)]
enum LocatedNode {
    Scalar {
        at: (usize, usize),
        value: String,
    },
    Sequence {
        at: (usize, usize),
        items: Vec<LocatedNode>,
    },
    Mapping {
        at: (usize, usize),
        entries: Vec<(LocatedNode, LocatedNode)>,
    },
}

impl LocatedNode {
    fn at(&self) -> (usize, usize) {
        match self {
            // A block mapping is marked after its first key; its first key
            // is where a person looks for it.
            LocatedNode::Mapping { entries, .. } if !entries.is_empty() => entries[0].0.at(),
            LocatedNode::Scalar { at, .. }
            | LocatedNode::Sequence { at, .. }
            | LocatedNode::Mapping { at, .. } => *at,
        }
    }
}

/// Builds [`LocatedNode`]s from the parser's events.
#[derive(Default)]
struct TreeBuilder {
    /// Open collections, each with a mapping's key that still waits for its value.
    stack: Vec<(LocatedNode, Option<LocatedNode>)>,
    root: Option<LocatedNode>,
}

impl TreeBuilder {
    fn push_node(&mut self, node: LocatedNode) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((LocatedNode::Sequence { items, .. }, _)) => items.push(node),
            Some((LocatedNode::Mapping { entries, .. }, pending_key)) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
            Some((LocatedNode::Scalar { .. }, _)) => {}
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        // yaml-rust2 counts lines from 1 and columns from 0.
        let at = (mark.line(), mark.col() + 1);
        match event {
            yaml_rust2::Event::Scalar(value, ..) => {
                self.push_node(LocatedNode::Scalar { at, value })
            }
            yaml_rust2::Event::Alias(_) => {
                self.push_node(LocatedNode::Scalar {
                    at,
                    value: String::new(),
                });
            }
            yaml_rust2::Event::SequenceStart(..) => {
                self.stack.push((
                    LocatedNode::Sequence {
                        at,
                        items: Vec::new(),
                    },
                    None,
                ));
            }
            yaml_rust2::Event::MappingStart(..) => {
                self.stack.push((
                    LocatedNode::Mapping {
                        at,
                        entries: Vec::new(),
                    },
                    None,
                ));
            }
            yaml_rust2::Event::SequenceEnd | yaml_rust2::Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.push_node(node);
                }
            }
            _ => {}
        }
    }
}

/// The 1-based line and column of the value (or, with `point_at_key`, the
/// key) at `path` in `text`, if the text parses and the path exists.
fn locate(text: &str, path: &[PathSegment], point_at_key: bool) -> Option<(usize, usize)> {
    let mut builder = TreeBuilder::default();
    yaml_rust2::parser::Parser::new_from_str(text)
        .load(&mut builder, false)
        .ok()?;
    let mut node = builder.root.as_ref()?;
    let mut key_at = None;
    for segment in path {
        match (segment, node) {
            (PathSegment::Key(wanted), LocatedNode::Mapping { entries, .. }) => {
                let (key, value) = entries.iter().find(
                    |(key, _)| matches!(key, LocatedNode::Scalar { value, .. } if value == wanted),
                )?;
                key_at = Some(key.at());
                node = value;
            }
            (PathSegment::Index(index), LocatedNode::Sequence { items, .. }) => {
                key_at = None;
                node = items.get(*index)?;
            }
            _ => return None,
        }
    }
    match (point_at_key, key_at) {
        (true, Some(at)) => Some(at),
        _ => Some(node.at()),
    }
}

#[cfg(test)]
mod tests;
