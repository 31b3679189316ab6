//! Single sign-on with an OpenID Connect provider: the authorization code
//! flow with PKCE (S256) and a nonce, through the `openidconnect` crate.
//!
//! A sign-in begins with a short-lived login-state cookie (`SameSite=Lax`,
//! so the provider's redirect back brings it) that carries what the
//! callback needs (the PKCE verifier, the nonce, the expected `state`),
//! sealed with a key of this process (`login_state.rs`): the server keeps
//! nothing per begun sign-in, so beginning sign-ins in a loop cannot push
//! out anyone's. A sign-in may take [`PENDING_FOR`]: a sign-in page left
//! open longer starts again. The callback compares `state`,
//! exchanges the code with the verifier (and the client secret of a
//! confidential client), and has the crate verify the ID token (the
//! provider's signature from its published keys, issuer, audience, expiry,
//! nonce). A login state finishes one sign-in at most. The ID token is
//! never put in a cookie; only the person's name and groups leave this
//! module.
//!
//! The provider is reached through hyper with rustls, redirects never
//! followed (the crate's advice against SSRF); its discovery document and
//! keys are read at the first sign-in and again after ten minutes or
//! when a token is signed with a key not seen yet (rotation). A provider
//! that is down makes SSO sign-in fail with a clear error; passwords and
//! tokens are untouched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdTokenVerifier};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl, IssuerUrl, LogoutRequest,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, TokenResponse,
};
use sha2::Digest;
use tokio::time::Instant;

use crate::adapters::error_chain;
use crate::config::OidcConfig;

mod login_state;

use login_state::Sealer;

/// How long a begun sign-in may take at the provider.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// How long the provider's discovery document and keys are used before
/// they are read again.
const METADATA_FOR: Duration = Duration::from_secs(600);
/// How long one exchange with the provider may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer taken from the provider.
const MAX_ANSWER: usize = 1024 * 1024;

/// Why an SSO sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or did not answer as one does.
    #[error("the identity provider cannot be reached: {0}")]
    Unavailable(String),
    /// The sign-in was not valid: refused, and audited.
    #[error("{0}")]
    Refused(String),
}

/// A sign-in begun: where to send the browser, and its sealed login state
/// for the cookie.
#[derive(Debug)]
pub struct Begun {
    /// The provider's authorization URL.
    pub url: String,
    /// The login-state cookie's value: the sealed login state.
    pub cookie: String,
}

/// Who the provider says signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// From `user_claim`, else `email`, else `sub`.
    pub name: String,
    /// From `groups_claim`.
    pub groups: Vec<String>,
}

/// An exchange with the provider that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExchangeFailed(String);

type ProviderClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One configured provider.
pub struct OidcProvider {
    config: OidcConfig,
    http: ProviderClient,
    metadata: tokio::sync::Mutex<Option<(ProviderMetadataWithLogout, Instant)>>,
    /// Seals each sign-in's login state into its cookie.
    sealer: Sealer,
    /// The login states that finished a sign-in, by hash, until they are
    /// too old to be taken anyway: the same one is not taken twice. Only
    /// sign-ins the provider confirmed come in here, so nobody can fill it
    /// without a provider's approval for each entry.
    finished: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.config.issuer.0)
            .finish_non_exhaustive()
    }
}

fn hashed(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(secret.as_bytes()))
}

impl OidcProvider {
    /// The provider of `config`; its TLS roots are read now (a `ca_file`
    /// that cannot be used stops the start), the provider itself is not
    /// reached until the first sign-in.
    pub fn new(config: &OidcConfig) -> Result<OidcProvider, String> {
        let tls = crate::adapters::upstream_client::verified_by(
            config.ca_file.as_deref(),
            config.issuer.0.starts_with("https://"),
            "the identity provider",
        )
        .map_err(|err| format!("auth.oidc.ca_file: {err}"))?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(EXCHANGE_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(OidcProvider {
            config: config.clone(),
            http: Client::builder(TokioExecutor::new()).build(connector),
            metadata: tokio::sync::Mutex::new(None),
            sealer: Sealer::new()?,
            finished: Mutex::new(HashMap::new()),
        })
    }

    /// The sign-in button's words.
    pub fn label(&self) -> &str {
        &self.config.label.0
    }

    /// The rules that map groups to roles.
    pub fn group_roles(&self) -> crate::domain::access::GroupRoles {
        self.config.group_roles()
    }

    /// One exchange with the provider, as the crate asks for it.
    async fn exchange(
        http: ProviderClient,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, ExchangeFailed> {
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let answer = async {
            let response = http.request(request).await.map_err(|err| {
                ExchangeFailed(if err.is_connect() {
                    "no connection".to_owned()
                } else {
                    "the exchange failed".to_owned()
                })
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| ExchangeFailed("its answer was cut off or too large".to_owned()))?
                .to_bytes();
            Ok(openidconnect::HttpResponse::from_parts(
                parts,
                body.to_vec(),
            ))
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, answer)
            .await
            .map_err(|_| {
                ExchangeFailed(format!("no answer within {} s", EXCHANGE_TIMEOUT.as_secs()))
            })?
    }

    /// The provider's discovery document and keys, read again when older
    /// than [`METADATA_FOR`] or when `refresh`.
    async fn metadata(&self, refresh: bool) -> Result<ProviderMetadataWithLogout, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, read)) = cached.as_ref()
            && !refresh
            && read.elapsed() < METADATA_FOR
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.0.clone())
            .map_err(|err| OidcError::Unavailable(format!("the issuer URL: {err}")))?;
        let http = self.http.clone();
        let client = move |request| Self::exchange(http.clone(), request);
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &client)
            .await
            .map_err(|err| {
                OidcError::Unavailable(format!(
                    "{} (its discovery document at {}/.well-known/openid-configuration): {}",
                    self.config.issuer.0,
                    self.config.issuer.0.trim_end_matches('/'),
                    error_chain(&err)
                ))
            })?;
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: ProviderMetadataWithLogout,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.config.redirect_url.0.clone())
            .map_err(|err| OidcError::Unavailable(format!("auth.oidc.redirect_url: {err}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.0.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|secret| ClientSecret::new(secret.0.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Begins a sign-in: the provider's address with PKCE, `state` and a
    /// nonce, and the sealed login state to set as a cookie.
    pub async fn begin(&self) -> Result<Begun, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            if scope.0 != "openid" {
                request = request.add_scope(Scope::new(scope.0.clone()));
            }
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let cookie = self
            .sealer
            .seal(verifier.secret(), nonce.secret(), state.secret())
            .map_err(OidcError::Unavailable)?;
        Ok(Begun {
            url: url.to_string(),
            cookie,
        })
    }

    /// Finishes the sign-in whose sealed login state is `login_state` (the
    /// cookie's value), with the
    /// provider's `code` and `state`: who signed in, once the ID token is
    /// verified. A login state finishes a sign-in at most once.
    pub async fn finish(
        &self,
        login_state: Option<&str>,
        code: &str,
        state: &str,
    ) -> Result<Person, OidcError> {
        let opened = login_state.and_then(|sealed| Some((sealed, self.sealer.open(sealed)?)));
        let Some((sealed, (pending, age))) = opened else {
            return Err(OidcError::Refused(
                "no sign-in was begun in this browser, or it took longer than 10 minutes; start again"
                    .to_owned(),
            ));
        };
        if age >= PENDING_FOR {
            return Err(OidcError::Refused(
                "the sign-in took longer than 10 minutes; start again".to_owned(),
            ));
        }
        let once = hashed(sealed);
        if lock(&self.finished).contains_key(&once) {
            return Err(OidcError::Refused(
                "this sign-in has been finished already (a replayed answer); start again"
                    .to_owned(),
            ));
        }
        // Compared as hashes: equal time whatever the first differing byte.
        if hashed(state) != hashed(&pending.state) {
            return Err(OidcError::Refused(
                "the provider's answer carries another sign-in's state (a forged or replayed answer)"
                    .to_owned(),
            ));
        }
        let nonce = Nonce::new(pending.nonce);
        let client = self.client(self.metadata(false).await?)?;
        let http = self.http.clone();
        let exchange = move |request| Self::exchange(http.clone(), request);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| {
                OidcError::Unavailable(format!("the provider names no token endpoint: {err}"))
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&exchange)
            .await
            .map_err(|err| match err {
                openidconnect::RequestTokenError::Request(err) => {
                    OidcError::Unavailable(format!("its token endpoint: {err}"))
                }
                other => OidcError::Refused(format!(
                    "the provider refused the sign-in code: {}",
                    error_chain(&other)
                )),
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::Refused("the provider sent no ID token".to_owned()))?;
        let verified = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(_) => Ok(()),
            // A key not seen yet: the provider may have rotated its keys.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.client(self.metadata(true).await?)?;
                let verifier: CoreIdTokenVerifier<'_> = fresh.id_token_verifier();
                id_token.claims(&verifier, &nonce).map(|_| ())
            }
            Err(err) => Err(err),
        };
        verified.map_err(|err| {
            OidcError::Refused(format!("the ID token is not valid: {}", error_chain(&err)))
        })?;
        let mut finished = lock(&self.finished);
        finished.retain(|_, at| at.elapsed() < PENDING_FOR);
        finished.insert(once, Instant::now());
        drop(finished);
        self.person(&id_token.to_string())
    }

    /// The person in a verified ID token's claims (its payload, read after
    /// the crate checked the signature, for the configured claims).
    fn person(&self, token: &str) -> Result<Person, OidcError> {
        let payload = token
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|payload| serde_json::from_slice::<serde_json::Value>(&payload).ok())
            .ok_or_else(|| OidcError::Refused("the ID token's claims cannot be read".to_owned()))?;
        let text = |claim: &str| {
            payload
                .get(claim)
                .and_then(serde_json::Value::as_str)
                .filter(|value| !value.trim().is_empty())
                .map(str::to_owned)
        };
        let name = text(&self.config.user_claim.0)
            .or_else(|| text("email"))
            .or_else(|| text("sub"))
            .ok_or_else(|| OidcError::Refused("the ID token names nobody".to_owned()))?;
        let groups = match payload.get(&self.config.groups_claim.0) {
            Some(serde_json::Value::Array(groups)) => groups
                .iter()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(serde_json::Value::String(group)) => vec![group.clone()],
            _ => Vec::new(),
        };
        Ok(Person { name, groups })
    }

    /// The provider's end-session address, when it has one, that comes
    /// back to `after` (RP-initiated logout with `client_id`).
    pub async fn end_session_url(&self, after: &str) -> Option<String> {
        let metadata = self.metadata(false).await.ok()?;
        let endpoint: EndSessionUrl = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.config.client_id.0.clone()));
        if let Ok(after) = PostLogoutRedirectUrl::new(after.to_owned()) {
            request = request.set_post_logout_redirect_uri(after);
        }
        Some(request.http_get_url().to_string())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
