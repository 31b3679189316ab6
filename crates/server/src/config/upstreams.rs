//! `upstreams:` and `hooks:`: the two upstreams (slots whose roles a
//! promotion may swap), their health checks, and the team's own scripts.

use std::str::FromStr;
use std::time::Duration;

use canary_shared as wire;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigDuration, HttpPath, Threshold, UpstreamUrl};
use crate::domain::roles::{Promotion, UpstreamSlot};

/// `upstreams:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamsConfig {
    /// The version serving users today.
    pub production: UpstreamConfig,
    /// The new version.
    pub canary: UpstreamConfig,
    /// What a promotion does to the two upstreams: `swap_roles` (the
    /// canary's upstream becomes production, the next canary deploys to the
    /// other one) or `promote_hook` (the promote hook redeploys production;
    /// its success is required). Left out: `promote_hook` when a promote
    /// hook is configured, else `swap_roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_promotion: Option<OnPromotion>,
    /// How long after a promotion that swapped the roles the previous
    /// production version stays deployed as a warm standby, which *Undo
    /// promotion* sends all traffic back to; then the retire hook runs.
    /// `0s`: retired at once. Not used with `promote_hook`, which
    /// redeploys production in place.
    #[serde(default = "default_undo_window")]
    pub undo_window: ConfigDuration,
}

fn default_undo_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

/// `upstreams.on_promotion:`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPromotion {
    /// The upstreams swap roles.
    SwapRoles,
    /// The promote hook moves the new version onto production's upstream.
    PromoteHook,
}

impl Default for UpstreamsConfig {
    fn default() -> Self {
        let upstream = |port: u16| UpstreamConfig {
            url: UpstreamUrl::from_str(&format!("http://127.0.0.1:{port}"))
                .expect("a loopback URL is valid"),
            version: None,
            health_check: HealthCheckConfig::default(),
            protocol: UpstreamProtocol::Http1,
            ca_file: None,
        };
        UpstreamsConfig {
            production: upstream(9001),
            canary: upstream(9002),
            on_promotion: None,
            undo_window: default_undo_window(),
        }
    }
}

impl UpstreamsConfig {
    /// The upstream listed in `slot`.
    pub fn slot(&self, slot: UpstreamSlot) -> &UpstreamConfig {
        match slot {
            UpstreamSlot::ListedAsProduction => &self.production,
            UpstreamSlot::ListedAsCanary => &self.canary,
        }
    }

    /// The upstream listed for `side`, before any promotion; who plays
    /// which side now is the deployment's `roles`.
    pub fn listed_for(&self, side: wire::Side) -> &UpstreamConfig {
        match side {
            wire::Side::Production => &self.production,
            wire::Side::Canary => &self.canary,
        }
    }

    /// What a promotion does, with the default resolved from `hooks`.
    pub fn promotion(&self, hooks: &HooksConfig) -> Promotion {
        match (self.on_promotion, hooks.promote.is_some()) {
            (Some(OnPromotion::SwapRoles), _) | (None, false) => Promotion::SwapRoles,
            (Some(OnPromotion::PromoteHook), _) | (None, true) => {
                Promotion::HookRedeploysProduction
            }
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
    /// What the proxy speaks to it: `http1` (the default; over TLS for an
    /// `https` URL), `h2c` (HTTP/2 in clear text, prior knowledge: most gRPC
    /// servers) or `h2` (HTTP/2 over TLS, by ALPN).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// The CA that signed an `https` upstream's certificate, when it is not
    /// one the system trusts (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// `upstreams.*.protocol:`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, in clear text.
    H2c,
    /// HTTP/2 over TLS.
    H2,
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
    /// Retires the previous production version when the undo window after
    /// a promotion is over (`{standby_version}`, `{standby_url}`).
    pub retire: Option<HookConfig>,
    /// When the deploy or health-check hook is left out, wait for the deploy
    /// script to report through `POST /admin/canary/webhook/{event}` instead
    /// of using the default.
    pub wait_for_webhooks: bool,
}

/// One hook: a program and its arguments (no shell), with a time limit.
///
/// Arguments may use `{image_tag}`, `{share}`, `{production_version}`,
/// `{canary_version}`, `{production_url}`, `{canary_url}`,
/// `{standby_version}`, `{standby_url}` and `{undo_window_secs}`; the same
/// values are in the environment as `CANARY_IMAGE_TAG`, `CANARY_SHARE`,
/// `CANARY_PRODUCTION_VERSION`, `CANARY_CANARY_VERSION`,
/// `CANARY_PRODUCTION_URL`, `CANARY_CANARY_URL`, `CANARY_STANDBY_VERSION`,
/// `CANARY_STANDBY_URL` and `CANARY_UNDO_WINDOW_SECS`, with `CANARY_HOOK`
/// naming the hook.
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

serialize_as!(HookCommand, |value| &value.0);
