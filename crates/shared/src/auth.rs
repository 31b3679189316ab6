//! Access control on the wire: roles, the login body and who is signed in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `POST`: sign in with a user name and password; sets the session cookie.
pub const LOGIN_PATH: &str = "/admin/canary/login";
/// `POST`: end the session of the cookie sent.
pub const LOGOUT_PATH: &str = "/admin/canary/logout";
/// `GET`: the [`Me`] behind the request's credentials.
pub const ME_PATH: &str = "/admin/canary/me";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "canary_session";

/// `GET`: begins a sign-in with the identity provider (a redirect there).
pub const OIDC_START_PATH: &str = "/admin/canary/auth/oidc/start";
/// `GET`: where the identity provider sends the browser back.
pub const OIDC_CALLBACK_PATH: &str = "/admin/canary/auth/oidc/callback";
/// `GET`: after the console's session ended, on to the identity provider's
/// sign-out (or back to the console).
pub const OIDC_SIGNED_OUT_PATH: &str = "/admin/canary/auth/oidc/signed-out";
/// The short-lived cookie that carries a sign-in begun at the identity
/// provider back to this server (`SameSite=Lax`, so the provider's redirect
/// brings it).
pub const OIDC_STATE_COOKIE: &str = "canary_oidc";

/// `GET /admin/canary/login`: how people may sign in here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    /// The single sign-on button's words, when an identity provider is
    /// configured (it starts at [`OIDC_START_PATH`]).
    pub single_sign_on: Option<String>,
    /// Whether user names and passwords are taken.
    pub passwords: bool,
}

/// What an identity may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads state, metrics, the audit trail and the stream.
    Viewer,
    /// Also drives rollouts: start, scale, continue, pause, promote, stop.
    Operator,
    /// Also reads the configuration and manages sessions.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name used in config and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `viewer`, `operator`, `admin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown role {:?}: use viewer, operator or admin",
            self.0
        )
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

/// The body of `POST /admin/canary/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's name as configured.
    pub user: String,
    /// The password, checked against the configured argon2 hash.
    pub password: String,
}

// The password never goes into logs or panic messages.
impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A console session (cookie).
    Session,
    /// An API token (`Authorization: Bearer`).
    Token,
    /// Logins are disabled and the server listens on loopback only.
    Local,
    /// Signed in by an authenticating reverse proxy in front of canary
    /// (oauth2-proxy and the like), believed for its peer address.
    Proxy,
}

/// Who is asking, as the server sees it (`GET /admin/canary/me`, and the
/// answer to a login).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The user or token name; recorded as the actor of every command.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How it signed in.
    pub kind: CredentialKind,
    /// Whether the server asks for logins at all.
    pub auth_enabled: bool,
    /// Where signing out goes when the authenticating proxy signed this
    /// person in (the proxy's own sign-out), if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_out_url: Option<String>,
    /// The team's admin panel the header links back to (`server.panel_link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel_url: Option<String>,
    /// The words of that link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panel_label: Option<String>,
}
