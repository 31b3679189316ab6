//! What the callback of a single sign-on needs (the PKCE verifier, the
//! nonce, the `state` sent to the provider, when the sign-in began), sealed
//! into the login-state cookie itself: AES-256-GCM under a key this process
//! made when it started, with a fresh random nonce per sign-in.
//!
//! Kept by the browser, not in the server's memory: beginning a sign-in is
//! an unauthenticated route, and anything the server kept per begun sign-in
//! would need a bound, which a flood of beginnings could then use to push
//! out the sign-ins of real people. Sealed, so the browser (or anyone who
//! sees the cookie) cannot read the verifier or change a byte without the
//! cookie being refused; the associated data ties it to this purpose.
//!
//! The key lives only in this process: a sign-in begun before a restart
//! must be started again, as when the state was kept in memory.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;

use crate::adapters::credentials::random_bytes;

/// What sealing is bound to: a cookie sealed for anything else (or by a
/// later format) does not open here.
const PURPOSE: &[u8] = b"canary oidc login state v1";
/// AES-GCM's nonce: 96 random bits per seal.
const NONCE_LEN: usize = 12;
/// Longer cookie values are refused before any decoding: a real one is
/// about 250 characters.
const MAX_SEALED_CHARS: usize = 1024;

/// A sign-in's login state, as the callback needs it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct LoginState {
    /// The PKCE code verifier.
    pub(super) verifier: String,
    /// The nonce the ID token must carry.
    pub(super) nonce: String,
    /// The `state` the provider must send back.
    pub(super) state: String,
    /// When the sign-in began: milliseconds after the sealer's start, so
    /// a wall-clock jump neither ends nor extends a sign-in.
    begun_ms: u64,
}

/// Seals and opens login states with this process's key.
pub(super) struct Sealer {
    cipher: Aes256Gcm,
    started: Instant,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer with a new random key.
    pub(super) fn new() -> Result<Sealer, String> {
        let key = random_bytes::<32>().map_err(|err| err.to_string())?;
        Ok(Sealer {
            cipher: Aes256Gcm::new(&key.into()),
            started: Instant::now(),
        })
    }

    /// The cookie value for a sign-in beginning now.
    pub(super) fn seal(&self, verifier: &str, nonce: &str, state: &str) -> Result<String, String> {
        let begun_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let plain = serde_json::to_vec(&LoginState {
            verifier: verifier.to_owned(),
            nonce: nonce.to_owned(),
            state: state.to_owned(),
            begun_ms,
        })
        .map_err(|err| format!("the login state: {err}"))?;
        let nonce_bytes = random_bytes::<NONCE_LEN>().map_err(|err| err.to_string())?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: &plain,
                    aad: PURPOSE,
                },
            )
            .map_err(|_| "the login state could not be sealed".to_owned())?;
        let mut cookie = Vec::with_capacity(NONCE_LEN + sealed.len());
        cookie.extend_from_slice(&nonce_bytes);
        cookie.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(cookie))
    }

    /// The login state a cookie value carries and how long ago its sign-in
    /// began; `None` for anything this process did not seal, changed or
    /// cut in any way.
    pub(super) fn open(&self, cookie: &str) -> Option<(LoginState, Duration)> {
        if cookie.len() > MAX_SEALED_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: PURPOSE,
                },
            )
            .ok()?;
        let state: LoginState = serde_json::from_slice(&plain).ok()?;
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let age = Duration::from_millis(now_ms.saturating_sub(state.begun_ms));
        Some((state, age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sealed_state_opens_whole_with_its_age() {
        let sealer = Sealer::new().unwrap();
        let cookie = sealer
            .seal("the-verifier", "the-nonce", "the-state")
            .unwrap();
        assert!(cookie.len() < 400, "{}", cookie.len());
        assert!(!cookie.contains("verifier"), "the verifier is not readable");
        tokio::time::advance(Duration::from_secs(90)).await;
        let (state, age) = sealer.open(&cookie).unwrap();
        assert_eq!(
            (
                state.verifier.as_str(),
                state.nonce.as_str(),
                state.state.as_str()
            ),
            ("the-verifier", "the-nonce", "the-state")
        );
        assert_eq!(age, Duration::from_secs(90));
    }

    #[test]
    fn two_sign_ins_never_share_a_cookie() {
        let sealer = Sealer::new().unwrap();
        let first = sealer.seal("v", "n", "s").unwrap();
        let second = sealer.seal("v", "n", "s").unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn a_changed_cut_foreign_or_oversized_cookie_does_not_open() {
        let sealer = Sealer::new().unwrap();
        let cookie = sealer
            .seal("the-verifier", "the-nonce", "the-state")
            .unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        for at in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[at] ^= 1;
            assert!(
                sealer.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_none(),
                "byte {at}"
            );
            bytes[at] ^= 1;
        }
        assert!(sealer.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_some());
        assert!(sealer.open(&cookie[..cookie.len() - 4]).is_none());
        assert!(sealer.open("").is_none());
        assert!(sealer.open("not base64 at all!").is_none());
        assert!(sealer.open(&"A".repeat(MAX_SEALED_CHARS + 4)).is_none());
        // Another process's key: a cookie from before a restart.
        assert!(Sealer::new().unwrap().open(&cookie).is_none());
    }
}
