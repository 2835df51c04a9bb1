//! Random secrets (access tokens, device and session IDs) and the hash under which tokens are
//! stored.

use sha2::{Digest, Sha256};

use crate::error::{internal, Result};

const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols) by the platform CSPRNG.
pub fn random_string(len: usize, alphabet: &[u8]) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    // Rejection sampling keeps every symbol equally likely.
    let limit = 256 - 256 % alphabet.len();
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| internal("random number generator", e))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// A new media ID: 24 alphanumerics (142 random bits), unguessable, as Synapse makes them.
pub fn new_media_id() -> Result<String> {
    random_string(24, &URL_SAFE[..62])
}

/// A new access token: 256 random bits behind a recognisable prefix.
pub fn new_access_token() -> Result<String> {
    Ok(format!("stx_{}", random_string(43, URL_SAFE)?))
}

/// A new device ID, ten upper-case letters as Synapse makes them.
pub fn new_device_id() -> Result<String> {
    random_string(10, UPPER)
}

/// A new user-interactive auth session ID.
pub fn new_session_id() -> Result<String> {
    random_string(24, URL_SAFE)
}

/// A new guest localpart: digits only, a shape registration refuses to anyone else.
pub fn new_guest_localpart() -> Result<String> {
    random_string(12, DIGITS)
}

/// What the database keeps of a token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A number in `0..n` for sampling decisions that need no secrecy.
pub fn random_below(n: u32) -> u32 {
    let mut buf = [0u8; 4];
    let _ = getrandom::fill(&mut buf);
    u32::from_le_bytes(buf) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tokens_are_long_unique_and_url_safe() {
        let tokens: BTreeSet<String> = (0..1000).map(|_| new_access_token().unwrap()).collect();
        assert_eq!(tokens.len(), 1000);
        for t in &tokens {
            assert_eq!(t.len(), 4 + 43); // 43 symbols of 6 bits: 258 bits of randomness
            assert!(t[4..].bytes().all(|b| URL_SAFE.contains(&b)));
        }
        assert!(new_device_id().unwrap().bytes().all(|b| b.is_ascii_uppercase()));
        assert!(new_guest_localpart().unwrap().bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn random_strings_cover_the_alphabet_evenly() {
        let s = random_string(64_000, DIGITS).unwrap();
        for d in b'0'..=b'9' {
            let n = s.bytes().filter(|&b| b == d).count();
            assert!((5_600..7_200).contains(&n), "digit {} appeared {n} times", d as char);
        }
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
