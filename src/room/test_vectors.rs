//! The spec's own examples for canonical JSON, JSON signing, content hashes, event signing and
//! reference hashes (`content/appendices.md` "Canonical JSON", "Signing JSON" and "Cryptographic
//! Test Vectors"; `content/server-server-api.md` "Signing Events"), checked through our code paths:
//! `ServerKey`, the `CanonicalJsonObject` an `EventTemplate` carries, and `pdu::build`.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ruma_common::canonical_json::redact;
use ruma_common::serde::Base64;
use ruma_common::{CanonicalJsonObject, CanonicalJsonValue, OwnedUserId, RoomId};
use ruma_signatures::{
    verify_canonical_json_bytes, verify_event, verify_json, PublicKeyMap, SigningKeyAlgorithm, Verified,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::pdu::{self, EventTemplate, Position};
use super::signing::ServerKey;
use super::versions::RoomVersion;

/// `SIGNING_KEY_SEED`, `SERVER_NAME` and `KEY_ID` of "Cryptographic Test Vectors".
const SPEC_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const SERVER_NAME: &str = "domain";
const KEY_ID: &str = "ed25519:1";

fn object(value: Value) -> CanonicalJsonObject {
    serde_json::from_value(value).expect("a JSON object without floats")
}

/// The spec's seed is 43 characters whose last one carries two non-zero padding bits; a lenient
/// decoder (Python's `base64`, for one) reads the 32 bytes it means.
fn spec_seed_bytes() -> Vec<u8> {
    let lenient = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    lenient.decode(SPEC_SEED).unwrap()
}

/// The spec's signing key, built by `ServerKey::from_seed` from the canonical encoding of the
/// spec's seed bytes (see `the_spec_seed_string_is_accepted_as_given` for the string itself).
fn spec_key() -> ServerKey {
    let seed = spec_seed_bytes();
    assert_eq!(seed.len(), 32);
    ServerKey::from_seed(KEY_ID, &STANDARD_NO_PAD.encode(&seed)).unwrap()
}

fn spec_public_keys(key: &ServerKey) -> PublicKeyMap {
    let keys = [(KEY_ID.to_owned(), Base64::parse(key.public_key()).unwrap())].into_iter().collect();
    [(SERVER_NAME.to_owned(), keys)].into_iter().collect()
}

fn room_version(version: &str) -> RoomVersion {
    RoomVersion::parse(version).unwrap()
}

/// Canonical JSON written from the spec's definition, independently of ruma: sorted keys, no
/// insignificant white space, UTF-8 rather than `\u` escapes.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> =
                entries.into_iter().map(|(k, v)| format!("{}:{}", canonical(&json!(k)), canonical(v))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => serde_json::to_string(other).unwrap(),
    }
}

fn without(object: &CanonicalJsonObject, keys: &[&str]) -> Value {
    let mut value = serde_json::to_value(object).unwrap();
    for key in keys {
        value.as_object_mut().unwrap().remove(*key);
    }
    value
}

fn sha256_b64(text: &str, engine: &GeneralPurpose) -> String {
    engine.encode(Sha256::digest(text.as_bytes()))
}

/// Appendices, "Unpadded Base64": "implementations SHOULD accept input with or without padding",
/// and the test vectors give their seed as `YJDBA9…XA1`.
#[test]
fn the_spec_seed_string_is_accepted_as_given() {
    let canonical = spec_key();
    let as_given = ServerKey::from_seed(KEY_ID, SPEC_SEED);
    assert!(as_given.is_ok(), "ServerKey::from_seed refuses the spec's seed: {:?}", as_given.err());
    assert_eq!(as_given.unwrap().public_key(), canonical.public_key());
}

/// The spec's seed bytes give the signing key every vector below is checked with; `from_seed`
/// takes the seed padded or not. The spec does not list the public key: this one was derived
/// independently (Python's `cryptography` package) from the same 32 bytes.
#[test]
fn the_spec_seed_bytes_give_the_spec_key() {
    let key = spec_key();
    assert_eq!(key.key_id, KEY_ID);
    assert_eq!(key.public_key(), "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI");
    let padded = ServerKey::from_seed(KEY_ID, &format!("{}=", STANDARD_NO_PAD.encode(spec_seed_bytes()))).unwrap();
    assert_eq!(padded.public_key(), key.public_key());
}

/// Appendices, "Unpadded Base64": the encoding examples, in the engine our keys are written with.
#[test]
fn unpadded_base64_examples() {
    for (input, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(STANDARD_NO_PAD.encode(input), encoded);
    }
}

/// Appendices, "Canonical JSON" examples, through the `CanonicalJsonObject` that event content
/// is carried in and the serialization `pdu::build` stores.
#[test]
fn canonical_json_examples() {
    let examples = [
        ("{}", "{}"),
        (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
        (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
        (r#"{"b":"2","a":"1"}"#, r#"{"a":"1","b":"2"}"#),
        (
            r#"{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",
                "three_pids": [{"medium": "email", "address": "john.doe@example.org"},
                               {"medium": "msisdn", "address": "123456789"}]}}}"#,
            r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
        ),
        (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
        (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
        (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
        (r#"{"a": null}"#, r#"{"a":null}"#),
    ];
    for (input, expected) in examples {
        let parsed: CanonicalJsonObject = serde_json::from_str(input).unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), expected, "{input}");
        assert_eq!(ruma_signatures::to_canonical_json_string_for_signing(&parsed).unwrap(), expected, "{input}");
        assert_eq!(canonical(&serde_json::from_str(input).unwrap()), expected, "{input}");
    }
}

/// Appendices, "Canonical JSON", last example.
#[test]
fn canonical_json_example_with_negative_zero_and_exponent() {
    // The appendix serializes `{"a": -0, "b": 1e10}` as `{"a":0,"b":10000000000}`. Event content
    // of room versions 6 and up must be integers, and JSON that spells a number with a fraction
    // or an exponent is a float there: like Synapse's strict canonical JSON, we refuse it rather
    // than guess. Integers in range serialize exactly as the appendix says.
    for input in [r#"{"b": 1e10}"#, r#"{"a": -0.0}"#] {
        assert!(serde_json::from_str::<CanonicalJsonObject>(input).is_err(), "{input} must be refused");
    }
    let parsed = serde_json::from_str::<CanonicalJsonObject>(r#"{"b": 10000000000, "a": 0}"#).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), r#"{"a":0,"b":10000000000}"#);
}

/// Appendices, "Cryptographic Test Vectors" / "JSON Signing": the two signed objects.
#[test]
fn json_signing_vectors() {
    let key = spec_key();

    let mut empty = object(json!({}));
    key.sign_json(SERVER_NAME, &mut empty).unwrap();
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"signatures": {"domain": {
            "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        }}})
    );

    let mut data = object(json!({"one": 1, "two": "Two"}));
    key.sign_json(SERVER_NAME, &mut data).unwrap();
    assert_eq!(
        serde_json::to_value(&data).unwrap(),
        json!({
            "one": 1,
            "signatures": {"domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }},
            "two": "Two"
        })
    );

    // Both verify with the public key `ServerKey` publishes, over exactly the canonical bytes
    // "Signing Details" describes.
    let keys = spec_public_keys(&key);
    verify_json(&keys, &empty).unwrap();
    verify_json(&keys, &data).unwrap();
    assert_signs(&key, br#"{"one":1,"two":"Two"}"#, &serde_json::to_value(&data).unwrap());
}

/// Checks that `signed`'s signature by the spec key is an ed25519 signature of `bytes`.
fn assert_signs(key: &ServerKey, bytes: &[u8], signed: &Value) {
    let signature = signed["signatures"][SERVER_NAME][KEY_ID].as_str().unwrap();
    let signature = STANDARD_NO_PAD.decode(signature).unwrap();
    let public_key = STANDARD_NO_PAD.decode(key.public_key()).unwrap();
    verify_canonical_json_bytes(&SigningKeyAlgorithm::Ed25519, &public_key, &signature, bytes)
        .unwrap_or_else(|e| panic!("not a signature of {}: {e}", String::from_utf8_lossy(bytes)));
}

/// Appendices, "Signing Details": `signatures` and `unsigned` are not covered, so a signature
/// survives changes to them and existing signatures of other entities are kept.
#[test]
fn json_signing_ignores_unsigned_and_keeps_other_signatures() {
    let key = spec_key();
    let mut data = object(json!({
        "one": 1,
        "two": "Two",
        "unsigned": {"age_ts": 922834800000_i64},
        "signatures": {"example.org": {"ed25519:x": "abc"}}
    }));
    key.sign_json(SERVER_NAME, &mut data).unwrap();
    let value = serde_json::to_value(&data).unwrap();
    assert_eq!(
        value["signatures"],
        json!({
            "example.org": {"ed25519:x": "abc"},
            "domain": {"ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}
        })
    );
    assert_eq!(value["unsigned"], json!({"age_ts": 922834800000_i64}));
}

/// The minimal event of "Event Signing", as the spec gives it.
fn minimal_event() -> CanonicalJsonObject {
    object(json!({
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000}
    }))
}

/// The event with redactable content of "Event Signing", as the spec gives it.
fn message_event() -> CanonicalJsonObject {
    object(json!({
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000}
    }))
}

/// Appendices, "Event Signing", first example: content hash and signature of a minimal event.
///
/// The vectors predate room version 11, whose redaction algorithm stops keeping the top-level
/// `origin`; the signature (over the redacted event) is the spec's under v10's rules.
#[test]
fn event_signing_vector_minimal_event() {
    let key = spec_key();
    let mut event = minimal_event();
    key.hash_and_sign_event(SERVER_NAME, &mut event, &room_version("10").rules.redaction).unwrap();
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({
            "auth_events": [],
            "content": {},
            "depth": 3,
            "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
            "origin": "domain",
            "origin_server_ts": 1000000,
            "prev_events": [],
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "signatures": {"domain": {
                "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
            }},
            "type": "X",
            "unsigned": {"age_ts": 1000000}
        })
    );
    assert_eq!(verify_event(&spec_public_keys(&key), &event, &room_version("10").rules).unwrap(), Verified::All);
    // "Signing Events": the signature is over the redacted event without `signatures` and `unsigned`.
    let redacted = redact(event.clone(), &room_version("10").rules.redaction, None).unwrap();
    let signed_bytes = canonical(&without(&redacted, &["signatures", "unsigned"]));
    assert!(signed_bytes.contains(r#""origin":"domain""#), "v10 keeps `origin` in the signed bytes");
    assert_signs(&key, signed_bytes.as_bytes(), &serde_json::to_value(&event).unwrap());
}

/// Appendices, "Event Signing", second example: the content hash covers the unredacted content,
/// the signature only the redacted event.
#[test]
fn event_signing_vector_redactable_content() {
    let key = spec_key();
    let mut event = message_event();
    key.hash_and_sign_event(SERVER_NAME, &mut event, &room_version("10").rules.redaction).unwrap();
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({
            "content": {"body": "Here is the message content"},
            "event_id": "$0:domain",
            "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {"domain": {
                "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
            }},
            "unsigned": {"age_ts": 1000000}
        })
    );

    // The signature holds for the redacted copy (content stripped), the content hash does not.
    let redacted = redact(event.clone(), &room_version("10").rules.redaction, None).unwrap();
    assert_eq!(serde_json::to_value(&redacted).unwrap()["content"], json!({}));
    assert_eq!(
        verify_event(&spec_public_keys(&key), &redacted, &room_version("10").rules).unwrap(),
        Verified::Signatures
    );
    assert_eq!(verify_event(&spec_public_keys(&key), &event, &room_version("10").rules).unwrap(), Verified::All);
}

/// Server-server API, "Calculating the content hash": the same for every room version, and equal
/// to a SHA-256 of the canonical JSON written here without `unsigned`, `signatures` and `hashes`.
#[test]
fn content_hash_is_version_independent_and_matches_the_definition() {
    let key = spec_key();
    for (event, hash) in [
        (minimal_event(), "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"),
        (message_event(), "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"),
    ] {
        let independent =
            sha256_b64(&canonical(&without(&event, &["unsigned", "signatures", "hashes"])), &STANDARD_NO_PAD);
        assert_eq!(independent, hash);
        for version in ["10", "11", "12"] {
            let mut signed = event.clone();
            key.hash_and_sign_event(SERVER_NAME, &mut signed, &room_version(version).rules.redaction).unwrap();
            assert_eq!(serde_json::to_value(&signed).unwrap()["hashes"], json!({"sha256": hash}), "v{version}");
        }
    }
}

/// From v11 the redaction algorithm drops the top-level `origin`, so the vectors' signatures are
/// not those of v11/v12 events; ours must then be the signature of the v11-redacted event.
#[test]
fn v11_and_v12_event_signatures_cover_the_v11_redaction() {
    let key = spec_key();
    for version in ["11", "12"] {
        let room = room_version(version);
        let mut event = minimal_event();
        key.hash_and_sign_event(SERVER_NAME, &mut event, &room.rules.redaction).unwrap();
        let signature = serde_json::to_value(&event).unwrap()["signatures"]["domain"]["ed25519:1"].clone();
        assert_ne!(
            signature,
            json!("KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg")
        );

        let redacted = redact(event.clone(), &room.rules.redaction, None).unwrap();
        let signed_bytes = canonical(&without(&redacted, &["signatures", "unsigned"]));
        assert!(!signed_bytes.contains("\"origin\""), "v{version} keeps `origin` out of the signed bytes");
        assert_signs(&key, signed_bytes.as_bytes(), &serde_json::to_value(&event).unwrap());
        assert_eq!(verify_event(&spec_public_keys(&key), &event, &room.rules).unwrap(), Verified::All);
        assert!(verify_event(&spec_public_keys(&key), &event, &room_version("10").rules).is_err());
    }
}

/// Server-server API, "Calculating the reference hash", and the v4+ event ID format: `$` and the
/// URL-safe unpadded base64 SHA-256 of the redacted event without `signatures` and `unsigned`.
/// The spec gives no input/output pair, so this checks `event_id_of` against that definition.
#[test]
fn reference_hash_event_ids_match_the_definition() {
    let key = spec_key();
    for version in ["10", "11", "12"] {
        let room = room_version(version);
        for mut event in [minimal_event(), message_event()] {
            key.hash_and_sign_event(SERVER_NAME, &mut event, &room.rules.redaction).unwrap();
            let redacted = redact(event.clone(), &room.rules.redaction, None).unwrap();
            let expected = sha256_b64(&canonical(&without(&redacted, &["signatures", "unsigned"])), &URL_SAFE_NO_PAD);
            let id = pdu::event_id_of(&event, &room.rules).unwrap();
            assert_eq!(id.as_str(), format!("${expected}"), "v{version}");
            assert_eq!(id.as_str().len(), 44, "v{version}");
            // The content is outside the reference hash once redacted, so it does not change the ID.
            if let Some(CanonicalJsonValue::Object(content)) = event.get_mut("content") {
                content.insert("body".into(), CanonicalJsonValue::String("edited".into()));
            }
            if event.contains_key("event_id") {
                assert_eq!(pdu::event_id_of(&event, &room.rules).unwrap(), id, "v{version}");
            }
        }
    }
}

/// `pdu::build` end to end: the PDU it stores carries the spec's content hash definition, a
/// signature that verifies with our published key, and the reference-hash event ID; a v12 create
/// event's room ID is that ID with `!` (appendices, "Room IDs").
#[test]
fn built_pdus_hash_sign_and_name_themselves_per_the_spec() {
    let key = spec_key();
    for version in ["10", "11", "12"] {
        let room = room_version(version);
        let room_id = RoomId::parse("!r:domain").unwrap();
        let template = EventTemplate {
            kind: "m.room.message".into(),
            state_key: None,
            sender: OwnedUserId::try_from("@u:domain").unwrap(),
            content: object(json!({"body": "Here is the message content", "msgtype": "m.text"})),
            redacts: None,
        };
        let at = Position { room_id: Some(&room_id), prev_events: Vec::new(), auth_events: Vec::new(), depth: 1 };
        let pdu = pdu::build(&room, &template, at, 1000000, &key, SERVER_NAME).unwrap();
        let stored: CanonicalJsonObject = serde_json::from_str(&pdu.json).unwrap();
        assert_eq!(pdu.json, canonical(&serde_json::from_str(&pdu.json).unwrap()), "stored as canonical JSON");
        let hash = sha256_b64(&canonical(&without(&stored, &["unsigned", "signatures", "hashes"])), &STANDARD_NO_PAD);
        assert_eq!(serde_json::to_value(&stored).unwrap()["hashes"], json!({"sha256": hash}), "v{version}");
        assert_eq!(verify_event(&spec_public_keys(&key), &stored, &room.rules).unwrap(), Verified::All);
        let redacted = redact(stored.clone(), &room.rules.redaction, None).unwrap();
        let reference = sha256_b64(&canonical(&without(&redacted, &["signatures", "unsigned"])), &URL_SAFE_NO_PAD);
        assert_eq!(pdu.event_id.as_str(), format!("${reference}"), "v{version}");

        let create = EventTemplate {
            kind: "m.room.create".into(),
            state_key: Some(String::new()),
            sender: OwnedUserId::try_from("@u:domain").unwrap(),
            content: object(json!({"room_version": version, "creator": "@u:domain"})),
            redacts: None,
        };
        let (room_id, create) = super::state::create_event(
            &room,
            &create,
            || RoomId::parse("!r:domain").unwrap(),
            1000000,
            &key,
            SERVER_NAME,
        )
        .unwrap();
        let stored: CanonicalJsonObject = serde_json::from_str(&create.json).unwrap();
        assert_eq!(verify_event(&spec_public_keys(&key), &stored, &room.rules).unwrap(), Verified::All);
        if version == "12" {
            assert!(!stored.contains_key("room_id"));
            assert_eq!(room_id.as_str(), format!("!{}", &create.event_id.as_str()[1..]));
        } else {
            assert_eq!(room_id.as_str(), "!r:domain");
        }
    }
}
