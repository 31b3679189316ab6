//! Validated scalars: each value in the config is checked as it is read,
//! and written back the way it was written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use canary_shared::CanaryShare;
use serde::{Deserialize, Serialize};

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

serialize_as!(ConfigDuration, |value| format_duration(value.0));
serialize_as!(FastWindow, |value| format!("{}s", value.0));

/// A check's short window (`fast_window`), in whole seconds from 2 to 59:
/// shorter than the minute every check is judged on, and long enough to
/// hold more than the second under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FastWindow(pub u32);

impl TryFrom<String> for FastWindow {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let duration = parse_duration(&text)?;
        let secs = duration.as_secs();
        if duration.subsec_nanos() != 0 || !(2..60).contains(&secs) {
            return Err(format!(
                "fast_window {text:?} must be whole seconds from 2s to 59s (the minute is always judged; 10s is usual)"
            ));
        }
        Ok(FastWindow(u32::try_from(secs).unwrap_or(59)))
    }
}
serialize_as!(Rate, |value| value.0);
serialize_as!(Threshold, |value| value.0);
serialize_as!(HttpPath, |value| value.0.as_str());
serialize_as!(UpstreamUrl, |value| value.to_string());
serialize_as!(TrafficSteps, |value| value
    .0
    .iter()
    .map(|share| share.percent())
    .collect::<Vec<f64>>());
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

/// An upstream's base URL: `http://host:port` or `https://host:port`, with
/// an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UpstreamUrl(hyper::Uri);

impl UpstreamUrl {
    /// The URL as parsed.
    pub fn uri(&self) -> &hyper::Uri {
        &self.0
    }

    /// Whether it is an `https` URL.
    pub fn is_https(&self) -> bool {
        self.0.scheme_str() == Some("https")
    }

    /// The port, said or implied by the scheme.
    pub fn port(&self) -> u16 {
        self.0
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
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
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "invalid URL {text:?}: write it as http://host:port or https://host:port"
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
