//! Password hashing: Argon2id with a random per-user salt, stored as a PHC string.
//!
//! The cost is a deliberate trade, set by `PASSWORD_HASH_MEMORY_KIB` and
//! `PASSWORD_HASH_ITERATIONS`. Workers' free plan allows 10 ms of CPU per request and a login
//! spends one hash, so the default (4 MiB, one pass: about 3 ms natively and an estimated 1.5 ms in
//! Wasm under workerd; `npm run bench` prints both) fits that budget. It is below OWASP's Argon2id floor (19 MiB,
//! two passes), which no setting within 10 ms reaches; online guessing is held back by the login
//! rate limits instead. On a paid plan, raise it to at least OWASP's values. Each hash records
//! its own parameters, so a change applies to new passwords and old ones keep verifying.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{internal, Result};

/// The cost of new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over that memory.
    pub iterations: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Self { memory_kib: 4096, iterations: 1 }
    }
}

impl Cost {
    /// Whether Argon2 accepts these parameters.
    pub fn is_valid(self) -> bool {
        Params::new(self.memory_kib, self.iterations, 1, None).is_ok()
    }
}

fn hasher(cost: Cost) -> Result<Argon2<'static>> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None).map_err(|e| internal("argon2 params", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password.
pub fn hash(password: &str, cost: Cost) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal("random number generator", e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| internal("salt", e))?;
    let phc = hasher(cost)?.hash_password(password.as_bytes(), &salt).map_err(|e| internal("argon2", e))?;
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
        let cost = Cost { memory_kib: 1024, iterations: 2 };
        let a = hash("correct horse", cost).unwrap();
        let b = hash("correct horse", Cost::default()).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"), "{a}");
        assert!(b.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{b}");
        assert_ne!(hash("x", cost).unwrap(), hash("x", cost).unwrap(), "each hash has its own salt");
        assert!(!Cost { memory_kib: 1, iterations: 1 }.is_valid());
        assert!(verify("correct horse", &a));
        assert!(verify("correct horse", &b));
        assert!(!verify("correct horse!", &a));
        assert!(!verify("", &a));
        assert!(!verify("correct horse", "not a phc string"));
    }

    /// The cost of one hash on this machine; run by `npm run bench` (release build).
    #[test]
    #[ignore]
    fn password_cost() {
        let runs = 20;
        for cost in [Cost::default(), Cost { memory_kib: 19 * 1024, iterations: 2 }] {
            let start = std::time::Instant::now();
            for _ in 0..runs {
                hash("benchmark password", cost).unwrap();
            }
            let per_hash = start.elapsed().as_secs_f64() * 1000.0 / runs as f64;
            println!("argon2id m={}KiB t={} p=1, native: {per_hash:.2} ms per hash", cost.memory_kib, cost.iterations);
        }
    }
}
