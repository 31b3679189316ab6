//! Secrets: argon2 password hashes, API token secrets and their hashes, and
//! session ids, all from the operating system's random source.
//!
//! Passwords are hashed with argon2id (the OWASP recommendation) because
//! people choose guessable ones. Token secrets are 256 random bits, which no
//! one can guess, so a single SHA-256 is enough to keep a leaked config from
//! revealing them; it also lets every API call be checked in microseconds
//! instead of the tens of milliseconds argon2 takes on purpose.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Token secrets start with this, so secret scanners and people can tell them apart.
pub const TOKEN_PREFIX: &str = "cnry_";

/// Why a secret could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The operating system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
    /// argon2 refused the input.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// `N` bytes from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CredentialError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|err| CredentialError::Random(err.to_string()))?;
    Ok(bytes)
}

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|err| CredentialError::Hash(err.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| CredentialError::Hash(err.to_string()))
}

/// Working memory for argon2, kept from one verification to the next.
///
/// A verification fills about 19 MiB of blocks. Allocated afresh each time,
/// on whichever blocking thread runs it, freed blocks linger in the
/// allocator's per-thread caches, and a crowd of sign-in attempts leaves the
/// server tens of MiB bigger; reused, the memory stays what a few
/// verifications at once need (see `AccessControl::verifications`).
#[derive(Debug, Default)]
pub struct VerifierMemory(Vec<argon2::Block>);

/// Whether `password` matches the PHC string `hash`, computed in `memory`
/// (grown when the hash asks for more) and compared in constant time.
pub fn verify_password(hash: &str, password: &str, memory: &mut VerifierMemory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0_u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let block_count = params.block_count();
    if memory.0.len() < block_count {
        memory.0.resize(block_count, argon2::Block::default());
    }
    let mut computed = vec![0_u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut computed,
            &mut memory.0[..block_count],
        )
        .is_ok()
        && computed
            .iter()
            .zip(expected.as_bytes())
            .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// A new API token: the secret to hand out once, and the hash for the config.
pub fn new_token() -> Result<(String, String), CredentialError> {
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    );
    let hash = token_hash(&secret);
    Ok((secret, hash))
}

/// `sha256:<hex>` of a token secret, as written in `auth.tokens[].secret_hash`.
pub fn token_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A new session: the cookie's secret value and a short handle that names
/// the session to admins without revealing the secret.
pub fn new_session() -> Result<(String, String), CredentialError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let digest = Sha256::digest(secret.as_bytes());
    let handle = URL_SAFE_NO_PAD.encode(&digest[..9]);
    Ok((secret, handle))
}

/// Compares two strings without stopping at the first difference.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use crate::adapters::credentials::{
        VerifierMemory, constant_time_eq, hash_password, new_session, new_token, token_hash,
        verify_password,
    };
    use argon2::Argon2;
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let mut memory = VerifierMemory::default();
        assert!(verify_password(&hash, "correct horse", &mut memory));
        assert!(!verify_password(&hash, "correct hors", &mut memory));
        assert!(!verify_password("not a hash", "correct horse", &mut memory));
        // A hash with other costs, made by another tool, in the same memory.
        let other = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 3, 1, Some(32)).unwrap(),
        )
        .hash_password(
            b"other",
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
        assert!(verify_password(&other, "other", &mut memory));
        assert!(!verify_password(&other, "Other", &mut memory));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn token_hashes_match_an_independent_sha256() {
        // `printf %s abc | sha256sum`
        assert_eq!(
            token_hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (secret, hash) = new_token().unwrap();
        assert!(
            secret.starts_with("cnry_") && secret.len() == 5 + 43,
            "{secret}"
        );
        assert_eq!(token_hash(&secret), hash);
        assert_ne!(new_token().unwrap().0, secret);
    }

    #[test]
    fn session_secrets_are_fresh_and_handles_do_not_reveal_them() {
        let (secret, handle) = new_session().unwrap();
        let (other, _) = new_session().unwrap();
        assert_ne!(secret, other);
        assert_eq!(secret.len(), 43);
        assert_eq!(handle.len(), 12);
        assert!(!secret.contains(&handle));
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq("sha256:ab", "sha256:ab"));
        assert!(!constant_time_eq("sha256:ab", "sha256:ac"));
        assert!(!constant_time_eq("sha256:ab", "sha256:abc"));
    }
}
