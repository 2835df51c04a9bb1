//! Send-to-device messaging: `PUT /sendToDevice/{eventType}/{txnId}`.
//!
//! Messages go to local users' devices only, as there is no federation: remote users are
//! skipped. A device ID that the user does not have receives nothing, and `*` means all of the
//! user's devices (when a user has `*`, their other entries are ignored: one message per device).
//! The messages and the transaction ID are written in one batch, so a retried request stores
//! nothing again.

use std::collections::BTreeMap;

use ruma_common::{ServerName, UserId};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{internal, invalid_param, Result};
use crate::http::Reply;
use crate::router::Ctx;
use crate::storage::to_device;
use crate::time::now_ms;

/// Event types are at most 255 bytes in events; to-device types follow them.
const MAX_TYPE_BYTES: usize = 255;
/// Transaction IDs are stored; this is generous for the UUIDs and counters clients use.
const MAX_TXN_ID_BYTES: usize = 255;

#[derive(Deserialize)]
struct Body {
    messages: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
}

pub async fn send_to_device(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester()?;
    let kind = cx.param("eventType");
    let txn_id = cx.param("txnId");
    if kind.len() > MAX_TYPE_BYTES {
        return Err(invalid_param(format!("Event types may be at most {MAX_TYPE_BYTES} bytes")));
    }
    if txn_id.len() > MAX_TXN_ID_BYTES {
        return Err(invalid_param(format!("Transaction IDs may be at most {MAX_TXN_ID_BYTES} bytes")));
    }
    let body: Body = cx.req.json()?;
    let entries = local_entries(&body, &cx.config.server_name)?;
    let messages_json = serde_json::to_string(&entries).map_err(|e| internal("serializing to-device messages", e))?;
    let user_id = requester.user_id.as_str();
    let mut statements = vec![to_device::insert_txn(&cx.db, user_id, &requester.device_id, txn_id, now_ms())?];
    if !entries.is_empty() {
        statements.push(to_device::insert_messages(&cx.db, user_id, kind, &messages_json)?);
    }
    // A UNIQUE conflict on the transaction means a retry: the first attempt stored everything.
    if cx.db.try_batch(statements).await?.is_some() && !entries.is_empty() {
        let positions = Positions { to_device: to_device::max_stream_id(&cx.db).await?, ..Positions::default() };
        let mut recipients: Vec<&str> = entries.iter().map(|(user, _, _)| *user).collect();
        recipients.dedup();
        let wakes = recipients.iter().map(|user| user_sync::notify(&cx.env, user, positions));
        futures::future::try_join_all(wakes).await?;
    }
    Ok(Reply::empty())
}

/// One message as the storage takes it: `[user_id, device_id or "*", content]`.
type Entry<'a> = (&'a str, &'a str, &'a Map<String, Value>);

/// `[user_id, device_id or "*", content]` for each message to a local user; `M_INVALID_PARAM`
/// for a key that is not a user ID.
fn local_entries<'a>(body: &'a Body, server_name: &ServerName) -> Result<Vec<Entry<'a>>> {
    let mut entries = Vec::new();
    for (user, devices) in &body.messages {
        let user_id =
            <&UserId>::try_from(user.as_str()).map_err(|_| invalid_param(format!("{user:?} is not a user ID")))?;
        if user_id.server_name() != server_name {
            continue;
        }
        match devices.get("*") {
            Some(content) => entries.push((user.as_str(), "*", content)),
            None => entries.extend(devices.iter().map(|(device, content)| (user.as_str(), device.as_str(), content))),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> Body {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn entries_keep_local_users_and_let_star_win() {
        let b = body(serde_json::json!({"messages": {
            "@a:hs": {"D1": {"x": 1}, "D2": {"x": 2}},
            "@b:hs": {"*": {"y": 1}, "D3": {"y": 2}},
            "@c:elsewhere": {"D4": {}},
            "@d:hs": {},
        }}));
        let entries = local_entries(&b, <&ServerName>::try_from("hs").unwrap()).unwrap();
        let short: Vec<(&str, &str)> = entries.iter().map(|(u, d, _)| (*u, *d)).collect();
        assert_eq!(short, vec![("@a:hs", "D1"), ("@a:hs", "D2"), ("@b:hs", "*")]);
        assert_eq!(serde_json::to_value(&entries).unwrap()[0], serde_json::json!(["@a:hs", "D1", {"x": 1}]));
    }

    #[test]
    fn keys_must_be_user_ids() {
        for bad in ["alice", "", "@", "!room:hs", "#alias:hs"] {
            let b = body(serde_json::json!({"messages": {bad: {"D": {}}}}));
            assert!(local_entries(&b, <&ServerName>::try_from("hs").unwrap()).is_err(), "{bad}");
        }
    }
}
