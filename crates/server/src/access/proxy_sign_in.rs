//! Sign-in by an authenticating reverse proxy (`auth.proxy`): the proxy
//! signs people in with the company's identity provider and passes who they
//! are in headers. Those headers are believed only on a connection whose own
//! peer address is one of the proxy's (never a forwarded-for header, which
//! any client can write), and, when configured, only with the shared secret
//! the proxy adds; the groups header maps to a role.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use canary_shared::Role;

use crate::adapters::credentials;
use crate::config::{IdentityName, IpNetwork, ProxyAuthConfig};
use crate::domain::access::GroupRoles;

/// `auth.proxy`, ready to check requests against.
#[derive(Debug)]
pub(crate) struct ProxySignIn {
    networks: Vec<IpNetwork>,
    user_header: HeaderName,
    groups_header: HeaderName,
    /// The secret's header and the `sha256:` hash of its value.
    secret: Option<(HeaderName, String)>,
    roles: GroupRoles,
    /// Where the console's *Sign out* goes.
    pub(crate) sign_out_url: Option<String>,
}

/// What a request's proxy headers say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ProxyIdentity {
    /// No user header, or not from the proxy: the request is judged by its
    /// other credentials, as if the headers were not there.
    NotFromProxy,
    /// From the proxy, without the right secret: 401.
    WrongSecret {
        /// The user header's value, for the denial's record.
        claimed: String,
    },
    /// From the proxy, but the person may not sign in: 403.
    Refused {
        /// Who.
        name: String,
        /// Why, in words.
        why: String,
    },
    /// Signed in.
    Known {
        /// The user header's value.
        name: String,
        /// The role their groups give.
        role: Role,
        /// Their groups, as the proxy listed them.
        groups: String,
    },
}

impl ProxySignIn {
    pub(crate) fn from_config(config: &ProxyAuthConfig) -> ProxySignIn {
        // The config checked both names when it was loaded.
        let header = |name: &crate::config::HeaderName| {
            HeaderName::from_bytes(name.0.as_bytes()).expect("validated header name")
        };
        ProxySignIn {
            networks: config.trusted_networks.clone(),
            user_header: header(&config.user_header),
            groups_header: header(&config.groups_header),
            secret: config
                .secret_header
                .as_ref()
                .zip(config.secret_hash.as_ref())
                .map(|(name, hash)| (header(name), hash.0.clone())),
            roles: config.group_roles(),
            sign_out_url: config.sign_out_url.clone(),
        }
    }

    /// Who `headers` say the person is, believed only from `peer` inside
    /// the trusted networks (`peer` is the connection's own address).
    pub(crate) fn identify(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ProxyIdentity {
        let Some(user) = headers.get(&self.user_header) else {
            return ProxyIdentity::NotFromProxy;
        };
        let trusted = peer.is_some_and(|peer| self.networks.iter().any(|net| net.contains(peer)));
        if !trusted {
            tracing::debug!(
                ?peer,
                header = %self.user_header,
                "a user header from a peer that is not the authenticating proxy; ignored"
            );
            return ProxyIdentity::NotFromProxy;
        }
        let claimed = String::from_utf8_lossy(user.as_bytes()).into_owned();
        if let Some((header, hash)) = &self.secret {
            let presented = headers
                .get(header)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_default();
            if !credentials::constant_time_eq(hash, &credentials::token_hash(&presented)) {
                return ProxyIdentity::WrongSecret {
                    claimed: crate::domain::access::printable(&claimed, 64),
                };
            }
        }
        let name = match IdentityName::try_from(claimed.trim().to_owned()) {
            Ok(name) => name.0,
            Err(why) => {
                return ProxyIdentity::Refused {
                    name: crate::domain::access::printable(&claimed, 64),
                    why: format!("the proxy's user header is not a usable name: {why}"),
                };
            }
        };
        let groups: Vec<String> = headers
            .get_all(&self.groups_header)
            .iter()
            .flat_map(|value| {
                String::from_utf8_lossy(value.as_bytes())
                    .split(',')
                    .map(|group| group.trim().to_owned())
                    .filter(|group| !group.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        let listed = if groups.is_empty() {
            "none".to_owned()
        } else {
            crate::domain::access::printable(&groups.join(", "), 200)
        };
        match self.roles.role_for(groups.iter().map(String::as_str)) {
            Some(role) => ProxyIdentity::Known {
                name,
                role,
                groups: listed,
            },
            None => ProxyIdentity::Refused {
                why: format!("{name} is in no group that gives a role (groups: {listed})"),
                name,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use canary_shared::Role;

    use super::{ProxyIdentity, ProxySignIn};

    fn sign_in(secret: bool) -> ProxySignIn {
        let mut yaml = String::from(
            "trusted_networks: [\"10.0.0.7\"]\nroles: { operator: [sre], viewer: [engineering] }\n",
        );
        if secret {
            // The hash of some other secret than the one the tests send.
            yaml.push_str("secret_header: x-proxy-secret\nsecret_hash: \"sha256:e68d5f5cb5be8c04d5aa2bfa4e2ab4b1f2d7e3e3b39b1f69e7e0a8a2c0c5b6e1\"\n");
        }
        let config: crate::config::ProxyAuthConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        ProxySignIn::from_config(&config)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_the_proxys_own_address_is_believed() {
        let proxy = sign_in(false);
        let alice = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "sre,dev"),
        ]);
        assert_eq!(
            proxy.identify(Some("10.0.0.7".parse().unwrap()), &alice),
            ProxyIdentity::Known {
                name: "alice".to_owned(),
                role: Role::Operator,
                groups: "sre, dev".to_owned()
            }
        );
        for peer in [Some("10.0.0.8".parse().unwrap()), None] {
            assert_eq!(proxy.identify(peer, &alice), ProxyIdentity::NotFromProxy);
        }
        let forwarded = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        assert_eq!(
            proxy.identify(Some("192.0.2.1".parse().unwrap()), &forwarded),
            ProxyIdentity::NotFromProxy,
            "X-Forwarded-For is never believed"
        );
    }

    #[test]
    fn groups_come_from_every_header_line_and_no_mapped_group_is_refused() {
        let proxy = sign_in(false);
        let peer = Some("10.0.0.7".parse().unwrap());
        let bob = headers(&[
            ("x-forwarded-user", "bob"),
            ("x-forwarded-groups", "marketing"),
            ("x-forwarded-groups", "engineering"),
        ]);
        assert!(matches!(
            proxy.identify(peer, &bob),
            ProxyIdentity::Known {
                role: Role::Viewer,
                ..
            }
        ));
        let carol = headers(&[
            ("x-forwarded-user", "carol"),
            ("x-forwarded-groups", "sales"),
        ]);
        assert_eq!(
            proxy.identify(peer, &carol),
            ProxyIdentity::Refused {
                name: "carol".to_owned(),
                why: "carol is in no group that gives a role (groups: sales)".to_owned()
            }
        );
        let odd = headers(&[
            ("x-forwarded-user", "eve smith"),
            ("x-forwarded-groups", "sre"),
        ]);
        assert!(matches!(
            proxy.identify(peer, &odd),
            ProxyIdentity::Refused { .. }
        ));
    }

    #[test]
    fn with_a_secret_the_headers_need_it_too() {
        let proxy = sign_in(true);
        let peer = Some("10.0.0.7".parse().unwrap());
        let hash = crate::adapters::credentials::token_hash("s3cret");
        // The test's hash literal must be the secret's: computed, not typed.
        let config: crate::config::ProxyAuthConfig = serde_yaml_ng::from_str(&format!(
            "trusted_networks: [\"10.0.0.7\"]\nroles: {{ operator: [sre] }}\nsecret_header: x-proxy-secret\nsecret_hash: \"{hash}\"\n"
        ))
        .unwrap();
        let proxy_with_secret = ProxySignIn::from_config(&config);
        let without = headers(&[("x-forwarded-user", "alice"), ("x-forwarded-groups", "sre")]);
        assert_eq!(
            proxy_with_secret.identify(peer, &without),
            ProxyIdentity::WrongSecret {
                claimed: "alice".to_owned()
            }
        );
        let with = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "sre"),
            ("x-proxy-secret", "s3cret"),
        ]);
        assert!(matches!(
            proxy_with_secret.identify(peer, &with),
            ProxyIdentity::Known {
                role: Role::Operator,
                ..
            }
        ));
        assert!(
            matches!(
                proxy.identify(peer, &with),
                ProxyIdentity::WrongSecret { .. }
            ),
            "a wrong hash refuses the right secret"
        );
    }
}
