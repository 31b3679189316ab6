//! `push:` — Web Push alerts to operators' devices (tablets, phones,
//! desktops) while no console is open.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::AllowedOrigin;
use super::scalars::ConfigDuration;

/// `push:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Whether the console offers push alerts and the server sends them.
    pub enabled: bool,
    /// Who runs this server, for the push services (`mailto:` or
    /// `https:`): the `sub` of every VAPID signature. Apple's push service
    /// refuses messages without one.
    pub contact: Option<PushContact>,
    /// Push services beyond the browsers' own (Google's, Mozilla's,
    /// Apple's, Microsoft's), as origins: a subscription's endpoint must be
    /// on one of them, so a subscription cannot make the server call an
    /// arbitrary address.
    pub services: Vec<AllowedOrigin>,
    /// How long a push service keeps an alert for a device that is off
    /// (at most a day: an older alert is news, not an alert).
    pub ttl: PushTtl,
    /// How long one delivery attempt may take.
    pub timeout: ConfigDuration,
    /// Further attempts after a failed one (with growing pauses).
    pub retries: u32,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            contact: None,
            services: Vec::new(),
            ttl: PushTtl(Duration::from_secs(3600)),
            timeout: ConfigDuration(Duration::from_secs(10)),
            retries: 3,
        }
    }
}

/// `push.ttl`: from 1s to 24h.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "ConfigDuration")]
pub struct PushTtl(pub Duration);

impl PushTtl {
    /// The longest: an alert older than a day is news, not an alert.
    pub const MAX: Duration = Duration::from_secs(24 * 3600);
}

impl From<PushTtl> for ConfigDuration {
    fn from(ttl: PushTtl) -> Self {
        ConfigDuration(ttl.0)
    }
}

impl TryFrom<String> for PushTtl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let ConfigDuration(ttl) = ConfigDuration::try_from(text)?;
        if ttl < Duration::from_secs(1) || ttl > Self::MAX {
            return Err(format!(
                "must be from 1s to 24h (an alert older than a day is news, not an alert), got {}",
                ConfigDuration(ttl)
            ));
        }
        Ok(PushTtl(ttl))
    }
}

/// `push.contact`: `mailto:oncall@example.com` or `https://…`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct PushContact(pub String);

impl fmt::Debug for PushContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PushContact({})", self.0)
    }
}

impl TryFrom<String> for PushContact {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let fine = match text.split_once(':') {
            Some(("mailto", address)) => address.contains('@') && !address.contains(' '),
            Some(("https", rest)) => rest.starts_with("//") && rest.len() > 2,
            _ => false,
        };
        if !fine || text.len() > 200 || text.chars().any(char::is_control) {
            return Err(format!(
                "invalid contact {text:?}: write a mailto: address or an https: URL, \
                 such as \"mailto:oncall@example.com\""
            ));
        }
        Ok(PushContact(text))
    }
}
