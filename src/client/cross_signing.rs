//! Cross-signing: `POST /keys/device_signing/upload` and `POST /keys/signatures/upload`.
//!
//! The self-signing and user-signing keys must be signed by the master key. User-interactive
//! auth guards replacing keys once a master key exists; the first upload, and the same keys
//! again, need none (MSC3967, spec v1.11). Uploaded signatures are verified one by one: devices
//! by their user's self-signing key, the user's master key by their devices, and other users'
//! master keys by the signer's user-signing key, which only the signer sees. A bad signature is a
//! per-key failure; the request still succeeds.
//!
//! A change of the master or self-signing key, or a signature of one's own keys, is a device list
//! change for everyone who shares a room with the user; a user-signing key or a signature of
//! someone else's master key concerns the signer alone.

use std::collections::BTreeMap;

use ruma_common::UserId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::device_lists;
use crate::context::Ctx;
use crate::error::{forbidden, internal, invalid_param, missing_param, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::signed_json::{cross_signing_public_key, same_signed_content, verify, Object, SignatureError};
use crate::storage::device_lists as stream;
use crate::storage::e2e_cross_signing_keys::{CrossSigningKeyRow, MASTER, SELF_SIGNING, USER_SIGNING};
use crate::storage::{devices, e2e_cross_signing_keys, e2e_cross_signing_signatures, e2e_device_keys};
use crate::uia::{self, AuthData, Flows};

const FLOWS: Flows = &[&[uia::PASSWORD]];
/// The most signed objects one `/keys/signatures/upload` may carry: each costs a verification.
const MAX_SIGNED_OBJECTS: usize = 100;

#[derive(Deserialize)]
struct SigningKeysBody {
    auth: Option<AuthData>,
    master_key: Option<Object>,
    self_signing_key: Option<Object>,
    user_signing_key: Option<Object>,
}

pub async fn upload_signing_keys(cx: Ctx) -> Result<Reply> {
    let body: SigningKeysBody = cx.req.json()?;
    let requester = cx.requester()?;
    let user = requester.user_id.as_str();
    let users_json = to_json(&[user])?;
    let (stored, devices) =
        futures::try_join!(e2e_cross_signing_keys::of_users(&cx.db, &users_json), devices::list(&cx.db, user))?;
    let stored: BTreeMap<&str, Object> =
        stored.iter().filter_map(|row| Some((row.usage.as_str(), serde_json::from_str(&row.key_json).ok()?))).collect();
    let uploaded: Vec<(&str, &Object)> = [
        (MASTER, body.master_key.as_ref()),
        (SELF_SIGNING, body.self_signing_key.as_ref()),
        (USER_SIGNING, body.user_signing_key.as_ref()),
    ]
    .into_iter()
    .filter_map(|(usage, key)| Some((usage, key?)))
    .collect();
    // What is stored already: nothing to change, and no auth to ask for.
    let changed: Vec<(&str, &Object)> =
        uploaded.into_iter().filter(|(usage, key)| stored.get(usage) != Some(*key)).collect();
    if changed.is_empty() {
        return Ok(Reply::empty());
    }

    let master =
        body.master_key.as_ref().or(stored.get(MASTER)).ok_or_else(|| missing_param("No master key available"))?;
    let master_public = checked_key(master, user, MASTER)?;
    let mut public_keys = Vec::new();
    for (usage, key) in &changed {
        let public = checked_key(key, user, usage)?;
        if *usage != MASTER && verify(key, user, &format!("ed25519:{master_public}"), master_public).is_err() {
            return Err(
                MatrixError::new(ErrorKind::InvalidSignature, format!("Invalid signature on {usage} key")).into()
            );
        }
        public_keys.push(public);
    }
    // Key IDs and device IDs share a namespace.
    if devices.iter().any(|d| public_keys.contains(&d.device_id.as_str())) {
        return Err(forbidden("Key ID in use"));
    }
    if stored.contains_key(MASTER) {
        uia::authenticate(&cx, body.auth, FLOWS, Some(&requester.user_id)).await?;
    }

    let mut statements = Vec::new();
    for (usage, key) in &changed {
        statements.push(e2e_cross_signing_keys::upsert(&cx.db, user, usage, &to_json(key)?)?);
    }
    let for_everyone = changed.iter().any(|(usage, _)| *usage != USER_SIGNING);
    statements.push(match for_everyone {
        true => stream::record(&cx.db, user)?,
        false => stream::record_for(&cx.db, &to_json(&[user])?, user)?,
    });
    cx.db.batch(statements).await?;
    match for_everyone {
        true => device_lists::announce(&cx, user).await?,
        false => device_lists::announce_to(&cx, user).await?,
    }
    Ok(Reply::empty())
}

/// Checks that a cross-signing key is `user`'s, for `usage`, with exactly one ed25519 key; returns
/// its public key.
fn checked_key<'a>(key: &'a Object, user: &str, usage: &str) -> Result<&'a str> {
    let usages = key.get("usage").and_then(Value::as_array);
    let well_formed = key.get("user_id").and_then(Value::as_str) == Some(user)
        && usages.is_some_and(|u| u.iter().any(|x| x.as_str() == Some(usage)));
    match cross_signing_public_key(key) {
        Some(public) if well_formed => Ok(public),
        _ => Err(invalid_param(format!("Invalid {usage} key"))),
    }
}

pub async fn upload_signatures(cx: Ctx) -> Result<Reply> {
    let body: BTreeMap<String, BTreeMap<String, Object>> = cx.req.json()?;
    if body.values().map(BTreeMap::len).sum::<usize>() > MAX_SIGNED_OBJECTS {
        return Err(invalid_param(format!("At most {MAX_SIGNED_OBJECTS} keys may be signed at once")));
    }
    let signer = cx.requester()?.user_id.as_str();
    let mut users: Vec<&str> = body.keys().map(String::as_str).filter(|u| is_local(&cx, u)).collect();
    if !users.contains(&signer) {
        users.push(signer);
    }
    let (users_json, signer_json) = (to_json(&users)?, to_json(&[signer])?);
    let (cross_signing, devices) = futures::try_join!(
        e2e_cross_signing_keys::of_users(&cx.db, &users_json),
        e2e_device_keys::of_users(&cx.db, &signer_json),
    )?;
    let keys = Keys {
        signer,
        cross_signing: &cross_signing,
        devices: devices.iter().filter_map(|d| Some((d.device_id.as_str(), parse(&d.key_json).ok()?))).collect(),
    };

    let mut accepted: Vec<[String; 5]> = Vec::new();
    let mut failures: BTreeMap<&str, BTreeMap<&str, Value>> = BTreeMap::new();
    for (target, objects) in &body {
        for (key_id, object) in objects {
            let checked = match target == signer {
                _ if signatures_by(object, signer).is_empty() => Err(invalid_signature("No signature by the uploader")),
                true => keys.own(key_id, object),
                false => keys.others(target, key_id, object),
            };
            match checked {
                Ok(signatures) => accepted.extend(signatures),
                Err(e) => {
                    let failure = json!({"errcode": e.kind.errcode_and_status().0, "error": e.message});
                    failures.entry(target).or_default().insert(key_id, failure);
                }
            }
        }
    }
    if !accepted.is_empty() {
        let own = accepted.iter().any(|s| s[0] == signer);
        let mut others: Vec<&str> = accepted.iter().map(|s| s[0].as_str()).filter(|t| *t != signer).collect();
        others.dedup();
        let mut statements = vec![e2e_cross_signing_signatures::insert(&cx.db, &to_json(&accepted)?)?];
        if own {
            statements.push(stream::record(&cx.db, signer)?);
        }
        if !others.is_empty() {
            statements.push(stream::record_for(&cx.db, &to_json(&others)?, signer)?);
        }
        cx.db.batch(statements).await?;
        match own {
            true => device_lists::announce(&cx, signer).await?,
            false => device_lists::announce_to(&cx, signer).await?,
        }
    }
    Reply::json(&json!({ "failures": failures }))
}

/// What signatures are checked against.
struct Keys<'a> {
    signer: &'a str,
    cross_signing: &'a [CrossSigningKeyRow],
    /// The signer's devices' keys, by device ID.
    devices: BTreeMap<&'a str, Object>,
}

/// A signature to store: `[target_user_id, target_key_id, signer_user_id, signer_key_id,
/// signature]`.
type Accepted = [String; 5];

impl Keys<'_> {
    /// `user`'s cross-signing key of `usage`, and its public key.
    fn cross_signing(&self, user: &str, usage: &str) -> Option<(Object, String)> {
        let row = self.cross_signing.iter().find(|r| r.user_id == user && r.usage == usage)?;
        let key = parse(&row.key_json).ok()?;
        let public = cross_signing_public_key(&key)?.to_owned();
        Some((key, public))
    }

    /// Signatures of the signer's own keys: a device by the self-signing key, or the master key
    /// by the signer's devices.
    fn own(&self, key_id: &str, object: &Object) -> Result<Vec<Accepted>, MatrixError> {
        let signer = self.signer;
        if let Some((master, public)) = self.cross_signing(signer, MASTER).filter(|(_, p)| p == key_id) {
            matches_stored(object, &master)?;
            let stored_signatures = master.get("signatures").and_then(|s| s.get(signer));
            let mut accepted = Vec::new();
            for (signing_key_id, signature) in signatures_by(object, signer) {
                if stored_signatures.and_then(|s| s.get(&signing_key_id)).is_some() {
                    continue;
                }
                let device = signing_key_id.strip_prefix("ed25519:").unwrap_or_default();
                let device_key = self.devices.get(device).and_then(|d| d.get("keys")?.get(&signing_key_id)?.as_str());
                let device_key = device_key.ok_or_else(|| invalid_signature("Signed by an unknown device"))?;
                check(object, signer, &signing_key_id, device_key)?;
                accepted.push([signer.into(), public.clone(), signer.into(), signing_key_id, signature]);
            }
            return Ok(accepted);
        }
        let (_, self_signing) = self
            .cross_signing(signer, SELF_SIGNING)
            .ok_or_else(|| MatrixError::new(ErrorKind::NotFound, "No self-signing key found"))?;
        let stored = self.devices.get(key_id).ok_or_else(|| MatrixError::new(ErrorKind::NotFound, "Unknown device"))?;
        matches_stored(object, stored)?;
        let signing_key_id = format!("ed25519:{self_signing}");
        let signature = check(object, signer, &signing_key_id, &self_signing)?;
        Ok(vec![[signer.into(), key_id.into(), signer.into(), signing_key_id, signature]])
    }

    /// A signature of another user's master key by the signer's user-signing key.
    fn others(&self, target: &str, key_id: &str, object: &Object) -> Result<Vec<Accepted>, MatrixError> {
        let (_, user_signing) = self
            .cross_signing(self.signer, USER_SIGNING)
            .ok_or_else(|| MatrixError::new(ErrorKind::NotFound, "No user-signing key found"))?;
        let (master, public) = self
            .cross_signing(target, MASTER)
            .filter(|(_, public)| public == key_id)
            .ok_or_else(|| MatrixError::new(ErrorKind::NotFound, "Unknown master key"))?;
        matches_stored(object, &master)?;
        let signing_key_id = format!("ed25519:{user_signing}");
        let signature = check(object, self.signer, &signing_key_id, &user_signing)?;
        Ok(vec![[target.into(), public, self.signer.into(), signing_key_id, signature]])
    }
}

/// The signed object must be the stored key, but for its signatures and unsigned data.
fn matches_stored(object: &Object, stored: &Object) -> Result<(), MatrixError> {
    match same_signed_content(object, stored) {
        true => Ok(()),
        false => Err(MatrixError::new(ErrorKind::InvalidParam, "The signed key does not match the stored key")),
    }
}

/// Verifies one signature; returns it.
fn check(object: &Object, signer: &str, key_id: &str, public_key: &str) -> Result<String, MatrixError> {
    verify(object, signer, key_id, public_key).map_err(|e| match e {
        SignatureError::Missing => invalid_signature("No signature by the expected key"),
        SignatureError::Invalid => invalid_signature("Invalid signature"),
    })?;
    // `verify` found it a string.
    Ok(object["signatures"][signer][key_id].as_str().unwrap_or_default().to_owned())
}

/// The signatures of `object` by `signer`, as (key ID, signature).
fn signatures_by(object: &Object, signer: &str) -> Vec<(String, String)> {
    let by_signer = object.get("signatures").and_then(|s| s.get(signer)).and_then(Value::as_object);
    by_signer.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
}

fn invalid_signature(message: &'static str) -> MatrixError {
    MatrixError::new(ErrorKind::InvalidSignature, message)
}

fn is_local(cx: &Ctx, user: &str) -> bool {
    <&UserId>::try_from(user).is_ok_and(|id| id.server_name() == cx.config.server_name)
}

fn parse(text: &str) -> Result<Object> {
    serde_json::from_str(text).map_err(|e| internal("stored key", e))
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| internal("serializing keys", e))
}
