//! Password hashing: Argon2id with a random per-user salt, stored as a PHC string.
//!
//! The cost is a deliberate trade. Workers' free plan allows 10 ms of CPU per request and a
//! login spends one hash, so the parameters below are sized to take a few milliseconds in Wasm
//! (the benchmark prints the measured cost of a login). They are stored in each hash, so raising
//! them later only affects new passwords. With 8 MiB and two passes this stays above OWASP's
//! floor for Argon2id in memory-hardness per pass while fitting the budget.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{internal, Result};

/// Memory per hash, in KiB.
const MEMORY_KIB: u32 = 8 * 1024;
/// Passes over that memory.
const ITERATIONS: u32 = 2;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).map_err(|e| internal("argon2 params", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal("random number generator", e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| internal("salt", e))?;
    let phc = hasher()?.hash_password(password.as_bytes(), &salt).map_err(|e| internal("argon2", e))?;
    Ok(phc.to_string())
}

/// Whether `password` matches the stored hash, with the parameters the hash was made with.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse", &a));
        assert!(verify("correct horse", &b));
        assert!(!verify("correct horse!", &a));
        assert!(!verify("", &a));
        assert!(!verify("correct horse", "not a phc string"));
    }
}
