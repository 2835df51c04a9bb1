//! Key management: `POST /keys/upload`, `POST /keys/query`, `POST /keys/claim` and
//! `GET /keys/changes`.
//!
//! Keys are stored as the client signed them; the server checks their shape, never their content.
//! A device's identity keys are fixed once uploaded: new ones for the same device are refused
//! (other fields, like `algorithms`, may change), and a one-time key ID uploaded again must name
//! the same key. There is no federation: remote users get a `failures` entry for their server.

use std::collections::BTreeMap;

use ruma_common::UserId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::device_lists;
use super::sync::parse_sync_token;
use crate::appservice::query;
use crate::context::Ctx;
use crate::durable_objects::user_sync::Positions;
use crate::error::{bad_json, internal, missing_param, unknown, Result};
use crate::http::Reply;
use crate::signed_json::{cross_signing_public_key, same_signed_content, Object};
use crate::storage::e2e_cross_signing_keys::{MASTER, SELF_SIGNING, USER_SIGNING};
use crate::storage::e2e_one_time_keys::KeyRow;
use crate::storage::{
    device_lists as stream, e2e_cross_signing_keys, e2e_cross_signing_signatures, e2e_device_keys, e2e_fallback_keys,
    e2e_one_time_keys, rows, streams, BatchError,
};

/// The algorithm whose one-time key count is always reported, 0 when there are none, as Synapse
/// does: clients expect to see it.
pub const SIGNED_CURVE25519: &str = "signed_curve25519";

pub async fn upload_keys(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester()?;
    let (user, device) = (requester.user_id.as_str(), requester.device_id.as_str());
    let body: Map<String, Value> = cx.req.json()?;
    let device_keys = match body.get("device_keys") {
        None => None,
        Some(Value::Object(keys)) => Some(check_device_keys(keys, user, device)?),
        Some(_) => return Err(bad_json("device_keys must be an object")),
    };
    let one_time = key_list(&body, "one_time_keys")?;
    let fallback = key_list(&body, "fallback_keys")?;

    let stored_device_keys = async {
        match device_keys {
            Some(_) => e2e_device_keys::get(&cx.db, user, device).await,
            None => Ok(None),
        }
    };
    let existing_one_time = async {
        if one_time.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<[&str; 2]> = one_time.iter().map(|k| [k.algorithm, k.key_id]).collect();
        e2e_one_time_keys::existing(&cx.db, user, device, &to_json(&ids)?).await
    };
    let (stored, existing) = futures::try_join!(stored_device_keys, existing_one_time)?;
    for row in &existing {
        let uploaded = one_time.iter().find(|k| k.algorithm == row.algorithm && k.key_id == row.key_id);
        if uploaded.is_some_and(|k| !same_one_time_key(&row.key_json, k.key)) {
            return Err(unknown(format!(
                "One time key {}:{} already exists with other content",
                row.algorithm, row.key_id
            )));
        }
    }

    let mut statements = Vec::new();
    let mut device_keys_changed = false;
    if let Some(keys) = device_keys {
        let stored: Option<Object> = stored.and_then(|s| serde_json::from_str(&s).ok());
        match stored {
            Some(old) if &old == keys => {}
            Some(old) if old.get("keys") != keys.get("keys") => {
                return Err(unknown("This device's identity keys are already uploaded, and may not change"));
            }
            _ => {
                statements.push(e2e_device_keys::upsert(&cx.db, user, device, &to_json(keys)?)?);
                statements.push(stream::record(&cx.db, user)?);
                device_keys_changed = true;
            }
        }
    }
    if !one_time.is_empty() {
        statements.push(e2e_one_time_keys::insert(&cx.db, user, device, &key_rows(&one_time)?)?);
    }
    if !fallback.is_empty() {
        statements.push(e2e_fallback_keys::upsert(&cx.db, user, device, &key_rows(&fallback)?)?);
    }
    if !statements.is_empty() {
        cx.db.batch(statements).await?;
    }
    let mut counts = e2e_one_time_keys::counts(&cx.db, user, device).await?;
    counts.entry(SIGNED_CURVE25519.to_owned()).or_insert(0);
    if device_keys_changed {
        device_lists::announce(&cx, user).await?;
    }
    Reply::json(&json!({ "one_time_key_counts": counts }))
}

/// Checks the shape of uploaded device keys and that they are the requester's.
fn check_device_keys<'a>(keys: &'a Object, user: &str, device: &str) -> Result<&'a Object> {
    // A field missing from the object is malformed keys, `M_BAD_JSON`, as Synapse answers.
    let field = |name: &'static str| keys.get(name).ok_or_else(|| bad_json(format!("device_keys.{name} is required")));
    let as_str = |name: &'static str| -> Result<&str> {
        field(name)?.as_str().ok_or_else(|| bad_json(format!("device_keys.{name} must be a string")))
    };
    let (named_user, named_device) = (as_str("user_id")?, as_str("device_id")?);
    let algorithms = field("algorithms")?.as_array();
    if !algorithms.is_some_and(|a| a.iter().all(Value::is_string)) {
        return Err(bad_json("device_keys.algorithms must be a list of strings"));
    }
    if !field("keys")?.as_object().is_some_and(|k| k.values().all(Value::is_string)) {
        return Err(bad_json("device_keys.keys must map key IDs to strings"));
    }
    if !is_signatures(field("signatures")?) {
        return Err(bad_json("device_keys.signatures must map user IDs to key IDs to strings"));
    }
    if named_user != user {
        return Err(bad_json("device_keys.user_id does not match the authenticated user"));
    }
    if named_device != device {
        return Err(bad_json("device_keys.device_id does not match the authenticated device"));
    }
    Ok(keys)
}

/// `{user_id: {key_id: signature}}`.
fn is_signatures(value: &Value) -> bool {
    value.as_object().is_some_and(|users| {
        users.values().all(|keys| keys.as_object().is_some_and(|k| k.values().all(Value::is_string)))
    })
}

/// One uploaded one-time or fallback key.
struct UploadedKey<'a> {
    algorithm: &'a str,
    key_id: &'a str,
    key: &'a Value,
}

/// The keys of `one_time_keys` or `fallback_keys`: each named `<algorithm>:<key_id>`, and a string
/// or an object with a string `key` and `signatures`.
fn key_list<'a>(body: &'a Object, name: &str) -> Result<Vec<UploadedKey<'a>>> {
    let keys = match body.get(name) {
        None => return Ok(Vec::new()),
        Some(Value::Object(keys)) => keys,
        Some(_) => return Err(bad_json(format!("{name} must be an object"))),
    };
    let mut out = Vec::with_capacity(keys.len());
    for (id, key) in keys {
        let Some((algorithm, key_id)) = id.split_once(':').filter(|(_, rest)| !rest.contains(':')) else {
            return Err(bad_json(format!("Invalid {name} key {id:?}: expected \"<algorithm>:<key_id>\"")));
        };
        let valid = match key {
            Value::String(_) => true,
            Value::Object(o) => {
                o.get("key").is_some_and(Value::is_string)
                    && o.get("signatures").is_some_and(is_signatures)
                    && o.get("fallback").is_none_or(|f| f.is_boolean() || f.is_null())
            }
            _ => false,
        };
        if !valid {
            return Err(bad_json(format!("{name}.{id} must be a key string or a signed key object")));
        }
        out.push(UploadedKey { algorithm, key_id, key });
    }
    Ok(out)
}

/// Keys as the storage takes them: a JSON array of `[algorithm, key_id, key_json]`.
fn key_rows(keys: &[UploadedKey<'_>]) -> Result<String> {
    let rows: Vec<(&str, &str, String)> =
        keys.iter().map(|k| Ok((k.algorithm, k.key_id, to_json(k.key)?))).collect::<Result<_>>()?;
    to_json(&rows)
}

/// Whether a stored one-time key and an uploaded one are the same key; signatures may differ.
fn same_one_time_key(stored_json: &str, uploaded: &Value) -> bool {
    let Ok(stored) = serde_json::from_str::<Value>(stored_json) else { return false };
    match (&stored, uploaded) {
        (Value::Object(a), Value::Object(b)) => same_signed_content(a, b),
        _ => &stored == uploaded,
    }
}

#[derive(Deserialize)]
struct QueryBody {
    device_keys: BTreeMap<String, Vec<String>>,
}

pub async fn get_keys(cx: Ctx) -> Result<Reply> {
    let reader = cx.requester()?.user_id.as_str();
    let body: QueryBody = cx.req.json()?;
    let (local, failures) = local_users(&cx, body.device_keys.keys().map(String::as_str));
    // Users an application service may create when asked about them.
    query::ask_unknown_users(&cx.db, cx.config.server_name.as_str(), &local).await?;
    let users_json = to_json(&local)?;
    let (devices, cross_signing, signatures) = futures::try_join!(
        e2e_device_keys::of_users(&cx.db, &users_json),
        e2e_cross_signing_keys::of_users(&cx.db, &users_json),
        e2e_cross_signing_signatures::visible(&cx.db, &users_json, reader),
    )?;
    // Uploaded signatures by the signed key: (user, device ID or master public key).
    let mut extra: BTreeMap<(&str, &str), Vec<_>> = BTreeMap::new();
    for s in &signatures {
        extra.entry((s.target_user_id.as_str(), s.target_key_id.as_str())).or_default().push(s);
    }
    let with_signatures = |user: &str, target: &str, mut object: Object| -> Object {
        for s in extra.get(&(user, target)).into_iter().flatten() {
            let all = object.entry("signatures").or_insert_with(|| json!({}));
            if let Some(all) = all.as_object_mut() {
                let by_signer = all.entry(s.signer_user_id.clone()).or_insert_with(|| json!({}));
                by_signer[&s.signer_key_id] = json!(s.signature);
            }
        }
        object
    };

    let mut device_keys: BTreeMap<&str, Object> = local.iter().map(|u| (*u, Object::new())).collect();
    for row in &devices {
        let wanted = body.device_keys.get(&row.user_id).is_some_and(|d| d.is_empty() || d.contains(&row.device_id));
        let Some(keys) = device_keys.get_mut(row.user_id.as_str()).filter(|_| wanted) else { continue };
        let mut object = with_signatures(&row.user_id, &row.device_id, parse_object(&row.key_json)?);
        let mut unsigned = Object::new();
        if let Some(name) = &row.display_name {
            unsigned.insert("device_display_name".into(), json!(name));
        }
        object.insert("unsigned".into(), Value::Object(unsigned));
        keys.insert(row.device_id.clone(), Value::Object(object));
    }
    let (mut master, mut self_signing, mut user_signing) = (Object::new(), Object::new(), Object::new());
    for row in &cross_signing {
        let key = parse_object(&row.key_json)?;
        match row.usage.as_str() {
            MASTER => {
                let public = cross_signing_public_key(&key).unwrap_or_default().to_owned();
                master.insert(row.user_id.clone(), Value::Object(with_signatures(&row.user_id, &public, key)));
            }
            SELF_SIGNING => {
                self_signing.insert(row.user_id.clone(), Value::Object(key));
            }
            // Only its owner sees a user-signing key.
            USER_SIGNING if row.user_id == reader => {
                user_signing.insert(row.user_id.clone(), Value::Object(key));
            }
            _ => {}
        }
    }
    Reply::json(&json!({
        "device_keys": device_keys,
        "master_keys": master,
        "self_signing_keys": self_signing,
        "user_signing_keys": user_signing,
        "failures": failures,
    }))
}

#[derive(Deserialize)]
struct ClaimBody {
    one_time_keys: BTreeMap<String, BTreeMap<String, String>>,
}

pub async fn claim_keys(cx: Ctx) -> Result<Reply> {
    let body: ClaimBody = cx.req.json()?;
    let (local, failures) = local_users(&cx, body.one_time_keys.keys().map(String::as_str));
    let query: Vec<[&str; 3]> = local
        .iter()
        .flat_map(|user| {
            let devices = body.one_time_keys.get(*user).into_iter().flatten();
            devices.map(|(device, algorithm)| [*user, device.as_str(), algorithm.as_str()])
        })
        .collect();
    let mut claimed: BTreeMap<String, BTreeMap<String, Object>> = BTreeMap::new();
    if !query.is_empty() {
        let query_json = to_json(&query)?;
        // One transaction: the fallback keys of devices with no one-time key left, then the
        // oldest one-time key of each of the others, taken and deleted in one statement.
        let statements =
            vec![e2e_fallback_keys::claim(&cx.db, &query_json)?, e2e_one_time_keys::claim(&cx.db, &query_json)?];
        let results = cx.db.batch_rows(statements).await.map_err(|e| match e {
            BatchError::Conflict(message) => internal("claiming keys", message),
            BatchError::Failed(e) => e,
        })?;
        for result in &results {
            for row in rows::<KeyRow>(result)? {
                let key: Value = serde_json::from_str(&row.key_json).map_err(|e| internal("stored key", e))?;
                let device = claimed.entry(row.user_id).or_default().entry(row.device_id).or_default();
                device.insert(format!("{}:{}", row.algorithm, row.key_id), key);
            }
        }
    }
    Reply::json(&json!({ "one_time_keys": claimed, "failures": failures }))
}

pub async fn get_key_changes(cx: Ctx) -> Result<Reply> {
    let from = parse_sync_token(cx.req.query("from").ok_or_else(|| missing_param("from is required"))?)?;
    // As in Synapse, `to` is only a hint: changes up to now are reported, so none is missed.
    let heads = Positions::from_array(streams::heads(&cx.db).await?);
    let lists = device_lists::between(&cx.db, cx.requester()?.user_id.as_str(), &from, &heads).await?;
    Reply::json(&json!({ "changed": lists.changed, "left": lists.left }))
}

/// The valid user IDs of this server among `users`, and a `failures` entry for each other
/// server named: there is no federation to ask it. Invalid user IDs are left out, as users
/// without keys would be.
fn local_users<'a>(cx: &Ctx, users: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Object) {
    let mut local = Vec::new();
    let mut failures = Object::new();
    for user in users {
        let Ok(id) = <&UserId>::try_from(user) else { continue };
        if id.server_name() == cx.config.server_name {
            local.push(user);
        } else {
            failures.insert(
                id.server_name().to_string(),
                json!({"status": 503, "message": "This server does not federate"}),
            );
        }
    }
    (local, failures)
}

fn parse_object(text: &str) -> Result<Object> {
    serde_json::from_str(text).map_err(|e| internal("stored key", e))
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| internal("serializing keys", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Object {
        value.as_object().unwrap().clone()
    }

    fn device_keys() -> Object {
        object(json!({"user_id": "@a:hs", "device_id": "D", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {"ed25519:D": "k"}, "signatures": {"@a:hs": {"ed25519:D": "s"}}}))
    }

    fn errcode(r: Result<impl std::fmt::Debug>) -> &'static str {
        r.unwrap_err().matrix().unwrap().kind.errcode_and_status().0
    }

    #[test]
    fn device_keys_must_be_well_formed_and_the_requesters() {
        assert!(check_device_keys(&device_keys(), "@a:hs", "D").is_ok());
        assert_eq!(errcode(check_device_keys(&device_keys(), "@b:hs", "D")), "M_BAD_JSON");
        assert_eq!(errcode(check_device_keys(&device_keys(), "@a:hs", "E")), "M_BAD_JSON");
        for (field, bad) in [
            ("algorithms", json!("x")),
            ("algorithms", json!([1])),
            ("keys", json!({"ed25519:D": 1})),
            ("signatures", json!({"@a:hs": "s"})),
            ("user_id", json!(5)),
        ] {
            let mut keys = device_keys();
            keys.insert(field.into(), bad);
            assert_eq!(errcode(check_device_keys(&keys, "@a:hs", "D")), "M_BAD_JSON", "{field}");
        }
        let mut keys = device_keys();
        keys.remove("signatures");
        assert_eq!(errcode(check_device_keys(&keys, "@a:hs", "D")), "M_BAD_JSON");
    }

    #[test]
    fn uploaded_keys_need_an_algorithm_and_a_key_id() {
        let body = object(json!({"one_time_keys": {
            "signed_curve25519:AAAA": {"key": "k", "signatures": {"@a:hs": {"ed25519:D": "s"}}},
            "curve25519:BBBB": "k2",
        }}));
        let keys = key_list(&body, "one_time_keys").unwrap();
        let ids: Vec<(&str, &str)> = keys.iter().map(|k| (k.algorithm, k.key_id)).collect();
        assert_eq!(ids, vec![("curve25519", "BBBB"), ("signed_curve25519", "AAAA")]);
        for bad in [
            json!({"nocolon": "k"}),
            json!({"a:b:c": "k"}),
            json!({"a:b": 5}),
            json!({"a:b": {"signatures": {}}}),
            json!({"a:b": {"key": "k"}}),
            json!({"a:b": {"key": "k", "signatures": {}, "fallback": "yes"}}),
            json!([]),
        ] {
            let body = object(json!({ "fallback_keys": bad }));
            assert_eq!(errcode(key_list(&body, "fallback_keys").map(|_| ())), "M_BAD_JSON", "{bad}");
        }
        assert!(key_list(&object(json!({})), "fallback_keys").unwrap().is_empty());
    }

    #[test]
    fn a_one_time_key_is_the_same_whatever_its_signatures() {
        let stored = r#"{"key":"k","signatures":{"@a:hs":{"ed25519:D":"s1"}}}"#;
        assert!(same_one_time_key(stored, &json!({"key": "k", "signatures": {"@a:hs": {"ed25519:D": "s2"}}})));
        assert!(!same_one_time_key(stored, &json!({"key": "other", "signatures": {}})));
        assert!(same_one_time_key(r#""plain""#, &json!("plain")));
        assert!(!same_one_time_key(r#""plain""#, &json!("other")));
        assert!(!same_one_time_key(stored, &json!("k")));
    }
}
