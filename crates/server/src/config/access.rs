//! `auth:`, `server.tls:` and `notifications:` — who may use the admin API,
//! how it is served, and whom canary tells about rollouts.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use canary_shared::Role;
use canary_shared::audit::NotifyEvent;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::ConfigDuration;

/// `auth:` — logins for the console and API tokens for scripts.
///
/// Leaving the section out turns logins off, which the server accepts only
/// on a loopback admin address. With the section present, every request
/// needs a session or a token, and the section must name at least one.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "AuthInput")]
pub struct AuthConfig {
    /// People who log in to the console.
    pub users: Vec<UserConfig>,
    /// Scripts that send `Authorization: Bearer <secret>`.
    pub tokens: Vec<TokenConfig>,
    /// Session lifetimes.
    pub session: SessionConfig,
    /// Origins (`scheme://host[:port]`) whose pages may act with a session
    /// cookie, besides the address the console is served on. Exact matches
    /// only: no wildcards, no suffixes.
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Sign-in through an authenticating reverse proxy, off when left out.
    pub proxy: Option<crate::config::ProxyAuthConfig>,
    /// Single sign-on with an OpenID Connect provider, off when left out.
    pub oidc: Option<crate::config::OidcConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthInput {
    #[serde(default)]
    users: Vec<UserConfig>,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    #[serde(default)]
    session: SessionConfig,
    #[serde(default)]
    allowed_origins: Vec<AllowedOrigin>,
    #[serde(default)]
    proxy: Option<crate::config::ProxyAuthConfig>,
    #[serde(default)]
    oidc: Option<crate::config::OidcConfig>,
}

impl TryFrom<AuthInput> for AuthConfig {
    type Error = String;

    fn try_from(input: AuthInput) -> Result<Self, Self::Error> {
        if input.users.is_empty()
            && input.tokens.is_empty()
            && input.proxy.is_none()
            && input.oidc.is_none()
        {
            return Err(
                "auth names no users, no tokens, no authenticating proxy and no single sign-on, \
                 so nobody could sign in: add one (create a hash with `canary hash-password` or `canary \
                 new-token`), or leave the auth section out to serve without logins on \
                 loopback only"
                    .to_owned(),
            );
        }
        if let Some(proxy) = &input.proxy {
            if proxy.trusted_networks.is_empty() {
                return Err(
                    "proxy.trusted_networks is empty: name the authenticating proxy's \
                            own addresses, the only peers whose user headers are believed"
                        .to_owned(),
                );
            }
            if let Some(url) = &proxy.sign_out_url
                && !(url.starts_with('/')
                    || url.starts_with("https://")
                    || url.starts_with("http://"))
            {
                return Err(format!(
                    "proxy.sign_out_url {url:?} must be a path (\"/oauth2/sign_out\") or an http(s) URL"
                ));
            }
            if proxy.secret_header.is_some() != proxy.secret_hash.is_some() {
                return Err(
                    "proxy.secret_header and proxy.secret_hash go together: the header \
                            the proxy adds, and the sha256 of the secret it carries"
                        .to_owned(),
                );
            }
        }
        let mut names = HashSet::new();
        for name in input
            .users
            .iter()
            .map(|user| &user.name)
            .chain(input.tokens.iter().map(|token| &token.name))
        {
            if !names.insert(name.as_str()) {
                return Err(format!(
                    "the name {name:?} is used twice; every user and token needs its own name, \
                     because it is what the audit trail records"
                ));
            }
        }
        if input.session.idle_timeout.0 > input.session.absolute_timeout.0 {
            return Err(format!(
                "session.idle_timeout ({}) is longer than session.absolute_timeout ({})",
                crate::config::format_duration(input.session.idle_timeout.0),
                crate::config::format_duration(input.session.absolute_timeout.0)
            ));
        }
        Ok(AuthConfig {
            users: input.users,
            tokens: input.tokens,
            session: input.session,
            allowed_origins: input.allowed_origins,
            proxy: input.proxy,
            oidc: input.oidc,
        })
    }
}

/// `auth.users[]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login name, recorded as the actor of what the user does.
    pub name: IdentityName,
    /// What the user may do.
    pub role: Role,
    /// The argon2 PHC string from `canary hash-password`.
    pub password_hash: PasswordHash,
}

/// `auth.tokens[]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token's name, recorded as the actor of what it does.
    pub name: IdentityName,
    /// What the token may do.
    pub role: Role,
    /// `sha256:<hex>` of the secret, from `canary new-token`.
    pub secret_hash: TokenHash,
}

/// `auth.session:`
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused for this long ends (an open console keeps it in use).
    pub idle_timeout: ConfigDuration,
    /// A session ends this long after its login, used or not.
    pub absolute_timeout: ConfigDuration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: ConfigDuration(Duration::from_secs(30 * 60)),
            absolute_timeout: ConfigDuration(Duration::from_secs(12 * 3600)),
        }
    }
}

/// A user or token name: letters, digits, `.`, `_`, `-` and `@`, 1–64 long.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct IdentityName(pub String);

impl std::ops::Deref for IdentityName {
    type Target = String;

    fn deref(&self) -> &String {
        &self.0
    }
}

impl TryFrom<String> for IdentityName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let valid = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if valid {
            Ok(IdentityName(name))
        } else {
            Err(format!(
                "invalid name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
            ))
        }
    }
}

/// An argon2 password hash in PHC form (`$argon2id$v=19$m=…`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PasswordHash(pub String);

impl TryFrom<String> for PasswordHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let parsed = argon2::PasswordHash::new(&text).map_err(|err| {
            format!("invalid password hash ({err}): create one with `canary hash-password`")
        })?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "password hash uses {}, not argon2: create one with `canary hash-password`",
                parsed.algorithm
            ));
        }
        Ok(PasswordHash(text))
    }
}

/// A token secret's hash: `sha256:` and 64 hex digits.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TokenHash(pub String);

impl TryFrom<String> for TokenHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let valid = text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        if valid {
            Ok(TokenHash(text))
        } else {
            Err(
                "invalid token hash: expected \"sha256:\" and 64 lower-case hex digits, \
                 as printed by `canary new-token`"
                    .to_owned(),
            )
        }
    }
}

// Hashes are not secrets, but they need not travel or sit in logs either.
impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<hidden>)")
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<hidden>)")
    }
}

impl Serialize for PasswordHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<hidden>")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<hidden>")
    }
}

/// An origin as a browser sends it: `http://host[:port]` or `https://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct AllowedOrigin(pub String);

impl TryFrom<String> for AllowedOrigin {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let invalid = |why: &str| {
            format!(
                "invalid origin {text:?}: {why}; write it as the browser sends it, \
                 for example \"https://canary.example.com:8443\""
            )
        };
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| invalid("it must start with http:// or https://"))?;
        if rest.is_empty() {
            return Err(invalid("it has no host"));
        }
        if rest.contains(['/', '*', '?', '#', '@', ' ']) {
            return Err(invalid("an origin has no path, wildcard, query or user"));
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("browsers send origins in lower case"));
        }
        Ok(AllowedOrigin(text))
    }
}

/// `server.tls:` — serve the console and API over HTTPS.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `notifications[]` — a receiver told about rollout events.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfig {
    /// Shown in logs (the URL is not, as it often holds a secret).
    pub name: IdentityName,
    /// Where to `POST`; `http://` or `https://`.
    pub url: NotifyUrl,
    /// The body's form.
    #[serde(default)]
    pub format: NotifyFormat,
    /// Which events to send; all of them when left out.
    #[serde(default = "NotifyEvent::all")]
    pub events: Vec<NotifyEvent>,
    /// How long one delivery attempt may take.
    #[serde(default = "default_notify_timeout")]
    pub timeout: ConfigDuration,
    /// Further attempts after a failed one (with growing pauses).
    #[serde(default = "default_notify_retries")]
    pub retries: u32,
}

fn default_notify_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

fn default_notify_retries() -> u32 {
    3
}

/// The body a receiver gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// `{"event", "message", "actor", "at", "state"}` with the full state.
    #[default]
    Json,
    /// `{"text": "…"}`, as Slack's incoming webhooks (and Mattermost, Rocket.Chat) take it.
    Slack,
}

/// A receiver's URL; shown without its path, which often holds a secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NotifyUrl(pub hyper::Uri);

impl NotifyUrl {
    /// `scheme://host[:port]/…`, safe to show: without a `user:password@`
    /// and without the path and query, which often hold a secret too.
    pub fn redacted(&self) -> String {
        let host = self.0.host().unwrap_or("");
        match self.0.port_u16() {
            Some(port) => format!(
                "{}://{host}:{port}/…",
                self.0.scheme_str().unwrap_or("http")
            ),
            None => format!("{}://{host}/…", self.0.scheme_str().unwrap_or("http")),
        }
    }
}

impl fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NotifyUrl({})", self.redacted())
    }
}

impl Serialize for NotifyUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl TryFrom<String> for NotifyUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let uri: hyper::Uri = text.parse().map_err(|err| format!("invalid URL: {err}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err("invalid URL: it must start with http:// or https://".to_owned());
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err("invalid URL: it has no host".to_owned());
        }
        Ok(NotifyUrl(uri))
    }
}
