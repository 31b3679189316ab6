//! Fitting into a team's admin panel: the path prefix the panel's reverse
//! proxy serves canary under (`server.path_prefix`), and the link back to
//! the panel in the console's header (`server.panel_link`).

use serde::{Deserialize, Serialize};

/// `server.path_prefix`: `/ops` or `/tools/deploys`, so the console sits at
/// `/ops/admin/canary`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PathPrefix(pub String);

impl TryFrom<String> for PathPrefix {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let invalid = |why: &str| {
            format!(
                "invalid path prefix {text:?}: {why}; write it as the panel's proxy forwards it, \
                 such as \"/ops\" (the console is then at /ops/admin/canary)"
            )
        };
        if !text.starts_with('/') {
            return Err(invalid("it starts with /"));
        }
        if text.len() == 1 || text.ends_with('/') {
            return Err(invalid("it does not end with /"));
        }
        if text.len() > 100 {
            return Err(invalid("it is at most 100 characters"));
        }
        let segments_ok = text[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        });
        if !segments_ok {
            return Err(invalid(
                "each segment is letters, digits, `-`, `.`, `_` or `~`, and not `.` or `..`",
            ));
        }
        if text == "/admin" || text.starts_with("/admin/canary") {
            return Err(invalid("the console's own path is added after it"));
        }
        Ok(PathPrefix(text))
    }
}

serialize_as!(PathPrefix, |value| &value.0);

/// `server.panel_link`: where the console's header links back to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PanelLink {
    /// The panel's address: an `https://` or `http://` URL, or a path on
    /// this host such as `/admin/`.
    pub url: PanelUrl,
    /// The link's words, such as "Admin panel".
    #[serde(default = "default_label")]
    pub label: PanelLabel,
}

fn default_label() -> PanelLabel {
    PanelLabel("Admin panel".to_owned())
}

/// A link the header may follow: http(s) or a path on this host, nothing a
/// browser would run (`javascript:`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PanelUrl(pub String);

impl TryFrom<String> for PanelUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let absolute = text.starts_with("https://") || text.starts_with("http://");
        let path = text.starts_with('/') && !text.starts_with("//");
        if !(absolute || path) || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid panel link {text:?}: give an http:// or https:// URL, or a path on this \
                 host such as \"/admin/\""
            ));
        }
        if text.parse::<hyper::Uri>().is_err() {
            return Err(format!("invalid panel link {text:?}: not a URL"));
        }
        Ok(PanelUrl(text))
    }
}

serialize_as!(PanelUrl, |value| &value.0);

/// The link's words: 1–40 characters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PanelLabel(pub String);

impl TryFrom<String> for PanelLabel {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let length = text.trim().chars().count();
        if length == 0 || length > 40 || text.chars().any(char::is_control) {
            return Err(
                "a panel link's label is 1 to 40 characters, such as \"Admin panel\"".to_owned(),
            );
        }
        Ok(PanelLabel(text))
    }
}

serialize_as!(PanelLabel, |value| &value.0);
