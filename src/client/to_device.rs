//! Send-to-device messaging: `PUT /sendToDevice/{eventType}/{txnId}`.
//!
//! Messages go to local users' devices only, as there is no federation: remote users are
//! skipped. A device ID that the user does not have receives nothing, and `*` means all of the
//! user's devices (when a user has `*`, their other entries are ignored: one message per device).
//! The messages and the transaction ID are written in one batch, so a retried request stores
//! nothing again.
//!
//! Each message must fit alone in the EDU that would carry it to another server (Synapse's
//! 64 KiB), and each sender is rate-limited (Synapse's `rc_key_requests` by default).

use std::collections::BTreeMap;

use ruma_common::{ServerName, UserId};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::appservice::ephemeral::{self, Stream};
use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{internal, invalid_param, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::ratelimit;
use crate::storage::to_device;
use crate::time::now_ms;

/// Event types are at most 255 bytes in events; to-device types follow them.
const MAX_TYPE_BYTES: usize = 255;
/// Transaction IDs are stored; this is generous for the UUIDs and counters clients use.
const MAX_TXN_ID_BYTES: usize = 255;
/// Synapse's bound on an EDU (`MAX_EDU_SIZE`), which each message must fit in alone.
const MAX_EDU_BYTES: usize = 65536;

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
    let user_id = requester.user_id.as_str();
    // A service registered with `rate_limited: false` is never limited, as in Synapse.
    if requester.appservice.as_ref().is_none_or(|s| s.registration.rate_limited) {
        ratelimit::check(&cx.db, cx.config.rc_to_device, "to-device", user_id, now_ms()).await?;
    }
    let entries = local_entries(&body, &cx.config.server_name)?;
    let messages_json = messages_json(user_id, kind, &entries)?;
    let mut statements = vec![to_device::insert_txn(&cx.db, user_id, &requester.device_id, txn_id, now_ms())?];
    if !entries.is_empty() {
        statements.push(to_device::insert_messages(&cx.db, user_id, kind, &messages_json)?);
    }
    // A UNIQUE conflict on the transaction means a retry: the first attempt stored everything.
    if cx.db.try_batch(statements).await?.is_some() && !entries.is_empty() {
        let positions = Positions { to_device: to_device::max_stream_id(&cx.db).await?, ..Positions::default() };
        let mut recipients: Vec<String> = entries.iter().map(|(user, _, _)| (*user).to_owned()).collect();
        recipients.dedup();
        ephemeral::poke(&cx, Stream::Ephemeral, Some(recipients.clone()));
        user_sync::notify_many(&cx.env, recipients, positions).await?;
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

/// The messages as the storage takes them, a JSON array of entries, each content serialized
/// once; `M_TOO_LARGE` for a message that would not fit alone in an EDU.
fn messages_json(sender: &str, kind: &str, entries: &[Entry<'_>]) -> Result<String> {
    let mut out = Vec::with_capacity(entries.len());
    for (user, device, content) in entries {
        let content = text(*content)?;
        if edu_bytes(sender, kind, user, device, content.len()) > MAX_EDU_BYTES {
            let message = format!("The message to {user} is larger than an EDU ({MAX_EDU_BYTES} bytes)");
            return Err(MatrixError::new(ErrorKind::TooLarge, message).into());
        }
        out.push(format!("[{},{},{content}]", text(user)?, text(device)?));
    }
    Ok(format!("[{}]", out.join(",")))
}

fn text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| internal("serializing to-device messages", e))
}

/// The size of the `m.direct_to_device` EDU that would carry one message to one device, as Synapse
/// builds it (a 16-character message ID), for a content of `content_bytes`.
fn edu_bytes(sender: &str, kind: &str, user: &str, device: &str, content_bytes: usize) -> usize {
    let empty = serde_json::json!({
        "content": {"message_id": "0123456789abcdef", "messages": {user: {device: {}}}, "sender": sender, "type": kind},
        "edu_type": "m.direct_to_device",
    });
    empty.to_string().len() - "{}".len() + content_bytes
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
    fn each_message_must_fit_alone_in_an_edu() {
        let (sender, kind, user) = ("@s:hs", "m.test", "@a:hs");
        let overhead = edu_bytes(sender, kind, user, "D1", 0);
        let fitting = Map::from_iter([("b".to_owned(), Value::from("x".repeat(MAX_EDU_BYTES - overhead - 8)))]);
        assert_eq!(edu_bytes(sender, kind, user, "D1", text(&fitting).unwrap().len()), MAX_EDU_BYTES);
        let json = messages_json(sender, kind, &[(user, "D1", &fitting), (user, "D2", &fitting)]).unwrap();
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[1], serde_json::json!([user, "D2", fitting]));
        let mut over = fitting.clone();
        over.insert("b".into(), Value::from("x".repeat(MAX_EDU_BYTES - overhead - 7)));
        let refused = messages_json(sender, kind, &[(user, "D1", &fitting), (user, "D2", &over)]).unwrap_err();
        assert_eq!(refused.matrix().map(|m| m.kind), Some(ErrorKind::TooLarge));
    }

    #[test]
    fn keys_must_be_user_ids() {
        for bad in ["alice", "", "@", "!room:hs", "#alias:hs"] {
            let b = body(serde_json::json!({"messages": {bad: {"D": {}}}}));
            assert!(local_entries(&b, <&ServerName>::try_from("hs").unwrap()).is_err(), "{bad}");
        }
    }
}
