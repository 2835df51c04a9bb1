//! Signed JSON objects of end-to-end encryption (device keys, cross-signing keys, the objects of
//! `/keys/signatures/upload`): checking one signature, comparing signed content, and reading a
//! cross-signing key's public key. Pure, and natively tested.

use base64::Engine;
use ruma_common::canonical_json::try_from_json_map;
use ruma_signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes, SigningKeyAlgorithm};
use serde_json::{Map, Value};

use crate::room::signing::LENIENT;

pub type Object = Map<String, Value>;

/// Why a signature does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The object has no signature by that signer and key.
    Missing,
    /// The signature, the key or the object is malformed, or the signature is wrong.
    Invalid,
}

/// Checks the signature of `object` by `signer` (a user ID) with the ed25519 key `key_id`
/// (`ed25519:<name>`), whose public key is `public_key` in unpadded base64. What is signed is the
/// canonical JSON of the object without its `signatures` and `unsigned`.
pub fn verify(object: &Object, signer: &str, key_id: &str, public_key: &str) -> Result<(), SignatureError> {
    let signature = object
        .get("signatures")
        .and_then(|s| s.get(signer))
        .and_then(|s| s.get(key_id))
        .ok_or(SignatureError::Missing)?
        .as_str()
        .ok_or(SignatureError::Invalid)?;
    let signature = LENIENT.decode(signature).map_err(|_| SignatureError::Invalid)?;
    let public_key = LENIENT.decode(public_key).map_err(|_| SignatureError::Invalid)?;
    let canonical = try_from_json_map(object.clone())
        .ok()
        .and_then(|o| to_canonical_json_string_for_signing(&o).ok())
        .ok_or(SignatureError::Invalid)?;
    verify_canonical_json_bytes(&SigningKeyAlgorithm::Ed25519, &public_key, &signature, canonical.as_bytes())
        .map_err(|_| SignatureError::Invalid)
}

/// Whether two objects are the same but for their `signatures` and `unsigned`: the same signed
/// content.
pub fn same_signed_content(a: &Object, b: &Object) -> bool {
    let significant = |o: &Object| -> Vec<(String, Value)> {
        o.iter().filter(|(k, _)| *k != "signatures" && *k != "unsigned").map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    significant(a) == significant(b)
}

/// The public key of a cross-signing key: its `keys` has exactly one entry,
/// `ed25519:<public key>`, whose value is that same 32-byte public key in unpadded base64.
pub fn cross_signing_public_key(key: &Object) -> Option<&str> {
    let keys = key.get("keys")?.as_object()?;
    let [(id, value)] = keys.iter().collect::<Vec<_>>()[..] else { return None };
    let public = value.as_str()?;
    let decoded = LENIENT.decode(public).ok()?;
    (id.strip_prefix("ed25519:") == Some(public) && decoded.len() == 32).then_some(public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma_signatures::Ed25519KeyPair;
    use serde_json::json;

    fn pair(name: &str) -> Ed25519KeyPair {
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), name.to_owned()).unwrap()
    }

    fn public(pair: &Ed25519KeyPair) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(pair.public_key())
    }

    fn signed(object: Value, signer: &str, pair: &Ed25519KeyPair) -> Object {
        let mut canonical = try_from_json_map(object.as_object().unwrap().clone()).unwrap();
        ruma_signatures::sign_json(signer, pair, &mut canonical).unwrap();
        serde_json::to_value(canonical).unwrap().as_object().unwrap().clone()
    }

    #[test]
    fn a_signature_verifies_only_for_its_content_signer_and_key() {
        let device = pair("DEVICE");
        let key = public(&device);
        let object = signed(json!({"user_id": "@a:hs", "keys": {"ed25519:DEVICE": key}}), "@a:hs", &device);
        assert_eq!(verify(&object, "@a:hs", "ed25519:DEVICE", &key), Ok(()));
        // Unsigned data and further signatures are not signed.
        let mut extended = object.clone();
        extended.insert("unsigned".into(), json!({"device_display_name": "phone"}));
        extended["signatures"]["@b:hs"] = json!({"ed25519:X": "abc"});
        assert_eq!(verify(&extended, "@a:hs", "ed25519:DEVICE", &key), Ok(()));
        let mut changed = object.clone();
        changed.insert("extra".into(), json!(1));
        assert_eq!(verify(&changed, "@a:hs", "ed25519:DEVICE", &key), Err(SignatureError::Invalid));
        assert_eq!(verify(&object, "@b:hs", "ed25519:DEVICE", &key), Err(SignatureError::Missing));
        assert_eq!(verify(&object, "@a:hs", "ed25519:OTHER", &key), Err(SignatureError::Missing));
        assert_eq!(verify(&object, "@a:hs", "ed25519:DEVICE", &public(&pair("X"))), Err(SignatureError::Invalid));
        assert_eq!(verify(&object, "@a:hs", "ed25519:DEVICE", "not base64!"), Err(SignatureError::Invalid));
        let mut bad = object.clone();
        bad["signatures"]["@a:hs"]["ed25519:DEVICE"] = json!(5);
        assert_eq!(verify(&bad, "@a:hs", "ed25519:DEVICE", &key), Err(SignatureError::Invalid));
    }

    #[test]
    fn signed_content_ignores_signatures_and_unsigned() {
        let a = json!({"k": 1, "signatures": {"@a:hs": {}}}).as_object().unwrap().clone();
        let b = json!({"k": 1, "unsigned": {"x": 2}}).as_object().unwrap().clone();
        let c = json!({"k": 2}).as_object().unwrap().clone();
        assert!(same_signed_content(&a, &b));
        assert!(!same_signed_content(&a, &c));
    }

    #[test]
    fn a_cross_signing_key_has_exactly_one_ed25519_key_named_by_itself() {
        let key = public(&pair("M"));
        let ok = json!({"keys": {format!("ed25519:{key}"): key}});
        assert_eq!(cross_signing_public_key(ok.as_object().unwrap()), Some(key.as_str()));
        for bad in [
            json!({"keys": {}}),
            json!({"keys": {format!("ed25519:{key}"): key, "ed25519:other": "x"}}),
            json!({"keys": {"ed25519:other": key}}),
            json!({"keys": {"curve25519:abc": "abc"}}),
            json!({"keys": {"ed25519:AAAA": "AAAA"}}),
            json!({"keys": []}),
            json!({}),
        ] {
            assert_eq!(cross_signing_public_key(bad.as_object().unwrap()), None, "{bad}");
        }
    }
}
