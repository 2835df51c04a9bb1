//! The server's ed25519 signing key: built from its stored seed, it signs events and JSON
//! objects, and publishes itself at `GET /_matrix/key/v2/server`.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ruma_common::room_version_rules::RedactionRules;
use ruma_common::CanonicalJsonObject;
use ruma_signatures::Ed25519KeyPair;

/// Seeds as other servers write them: unpadded or padded, and trailing bits not necessarily zero
/// (the spec's own example seed has some). Clients' keys and signatures are read the same way.
pub(crate) const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// PKCS#8 v1 framing of a bare ed25519 seed (RFC 8410): the key pair is read from this DER.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

pub struct ServerKey {
    /// `ed25519:<version>`.
    pub key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// The key with the given ID (`ed25519:<version>`) and unpadded-base64 seed.
    pub fn from_seed(key_id: &str, seed_b64: &str) -> Result<Self, String> {
        let version = key_id.strip_prefix("ed25519:").ok_or_else(|| format!("{key_id} is not an ed25519 key ID"))?;
        let seed = LENIENT.decode(seed_b64.trim_end_matches('=')).map_err(|e| e.to_string())?;
        if seed.len() != 32 {
            return Err(format!("the seed of {key_id} is {} bytes, not 32", seed.len()));
        }
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let pair = Ed25519KeyPair::from_der(&der, version.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { key_id: key_id.to_owned(), pair })
    }

    /// The public key, unpadded base64.
    pub fn public_key(&self) -> String {
        STANDARD_NO_PAD.encode(self.pair.public_key())
    }

    /// Adds the content hash and this server's signature to an event.
    pub fn hash_and_sign_event(
        &self,
        server_name: &str,
        event: &mut CanonicalJsonObject,
        rules: &RedactionRules,
    ) -> Result<(), String> {
        ruma_signatures::hash_and_sign_event(server_name, &self.pair, event, rules).map_err(|e| e.to_string())
    }

    /// Adds this server's signature to a JSON object (`signatures` and `unsigned` excluded).
    pub fn sign_json(&self, server_name: &str, object: &mut CanonicalJsonObject) -> Result<(), String> {
        ruma_signatures::sign_json(server_name, &self.pair, object).map_err(|e| e.to_string())
    }
}

/// A fresh random seed, unpadded base64.
pub fn new_seed() -> Result<String, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
    Ok(STANDARD_NO_PAD.encode(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_round_trips_into_a_working_key() {
        let seed = new_seed().unwrap();
        let key = ServerKey::from_seed("ed25519:a1", &seed).unwrap();
        let again = ServerKey::from_seed("ed25519:a1", &seed).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let (mut a, mut b) = (CanonicalJsonObject::new(), CanonicalJsonObject::new());
        key.sign_json("hs", &mut a).unwrap();
        again.sign_json("hs", &mut b).unwrap();
        assert_eq!(a, b);
        assert!(ServerKey::from_seed("curve:a1", &seed).is_err());
        assert!(ServerKey::from_seed("ed25519:a1", "AAAA").is_err());
    }
}
