//! `proxy:` — how the built-in proxy splits and forwards traffic, and who
//! may force a side.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, ConfigDuration, HeaderName, format_duration, parse_duration};

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
    /// The same for the side playing the canary, when tighter: a canary
    /// that stops answering then fails its requests (and is rolled back)
    /// that much sooner, while production keeps the longer allowance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_response_timeout: Option<ConfigDuration>,
    /// Largest request body accepted; larger ones get 413.
    pub max_request_body: ByteSize,
    /// Requests in flight per side beyond which new ones get 503 at once.
    pub max_in_flight_per_side: u32,
    /// Retry a request without a body on production when the canary refuses
    /// the connection (nothing was sent, so the retry cannot repeat an effect).
    pub retry_refused_canary: bool,
    /// TLS towards clients: the certificate and key (PEM), offered with
    /// ALPN `h2` and `http/1.1`, reloaded on SIGHUP. Without it the listener
    /// speaks clear text: HTTP/1.1, and HTTP/2 with prior knowledge (h2c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::config::TlsConfig>,
    /// HTTP/2 limits towards clients.
    pub http2: Http2Config,
    /// How gRPC calls are judged.
    pub grpc: GrpcConfig,
}

/// `proxy.grpc:` — a gRPC call (`content-type: application/grpc…`) ends
/// with its outcome in `grpc-status` (a trailer, or a header when there is
/// no body), and its HTTP status is 200 for most failures.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// The `grpc-status` codes that count as a failure of the side, like a
    /// 5xx; any other code is a success (the caller's own errors, such as
    /// `NOT_FOUND` or `INVALID_ARGUMENT`, are not the server's fault).
    pub failure_codes: Vec<GrpcCode>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            failure_codes: [2, 4, 8, 13, 14, 15].map(GrpcCode).to_vec(),
        }
    }
}

/// A gRPC status code, written as its name (`UNAVAILABLE`) or number (14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "GrpcCodeInput")]
pub struct GrpcCode(pub u8);

/// The codes' names, by number (grpc/doc/statuscodes.md).
const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl GrpcCode {
    /// Its name, as gRPC spells it.
    pub fn name(self) -> &'static str {
        GRPC_CODE_NAMES
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("UNKNOWN")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GrpcCodeInput {
    Number(u64),
    Name(String),
}

impl TryFrom<GrpcCodeInput> for GrpcCode {
    type Error = String;

    fn try_from(input: GrpcCodeInput) -> Result<Self, Self::Error> {
        match input {
            GrpcCodeInput::Number(number) if number <= 16 => Ok(GrpcCode(number as u8)),
            GrpcCodeInput::Number(number) => {
                Err(format!("{number} is not a gRPC status code (0 to 16)"))
            }
            GrpcCodeInput::Name(name) => GRPC_CODE_NAMES
                .iter()
                .position(|known| known.eq_ignore_ascii_case(&name))
                .map(|at| GrpcCode(at as u8))
                .ok_or_else(|| {
                    format!("{name:?} is not a gRPC status code such as UNAVAILABLE or INTERNAL")
                }),
        }
    }
}

serialize_as!(GrpcCode, |code| code.name());

/// `proxy.http2:` — what one HTTP/2 client connection may ask of the proxy.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Streams (requests) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Largest request header list (decoded, as HTTP/2 counts it); beyond it
    /// the request is refused and a client that keeps sending is cut off.
    pub max_header_list_size: ByteSize,
    /// Flow-control window per stream: how much of a request body the proxy
    /// takes before the upstream has read it.
    pub stream_window: ByteSize,
    /// Flow-control window per connection.
    pub connection_window: ByteSize,
    /// Streams a client may open and reset before the proxy has taken them
    /// up; more, and the connection is closed (the rapid-reset attack).
    pub max_pending_resets: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: 100,
            max_header_list_size: ByteSize(64 * 1024),
            stream_window: ByteSize(1024 * 1024),
            connection_window: ByteSize(4 * 1024 * 1024),
            max_pending_resets: 20,
        }
    }
}

impl ProxyConfig {
    /// How long `side`'s upstream has to start its answer.
    pub fn response_timeout(&self, side: canary_shared::Side) -> Duration {
        match (side, self.canary_response_timeout) {
            (canary_shared::Side::Canary, Some(canary)) => canary.0,
            _ => self.upstream_response_timeout.0,
        }
    }
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
            canary_response_timeout: None,
            max_request_body: ByteSize(10 * 1024 * 1024),
            max_in_flight_per_side: 1024,
            retry_refused_canary: true,
            tls: None,
            http2: Http2Config::default(),
            grpc: GrpcConfig::default(),
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

serialize_as!(ClientTimeout, |value| format_duration(value.0));
serialize_as!(IpNetwork, |value| value.to_string());
serialize_as!(TokenDigest, |value| value.to_string());
