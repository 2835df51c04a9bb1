//! Events as clients see them: the PDU's client-visible fields, redacted where a redaction
//! applies, with `unsigned` filled in for the reader.

use ruma_common::canonical_json::redact_content_in_place;
use ruma_common::CanonicalJsonObject;
use serde_json::{Map, Value};

use super::versions::RoomVersion;
use super::visibility::{in_ranges, Range};
use crate::storage::events::StoredEvent;

/// Who is reading: the sender's own device also sees its `transaction_id`.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub user_id: &'a str,
    pub device_id: Option<&'a str>,
    /// Where the reader was joined to the room ([`super::visibility::Timeline::joined_ranges`]): an erased
    /// sender's events outside them are served redacted, as Synapse does. `None`: the reader
    /// was in the room for whatever it is served (a notification, its own invite).
    pub joined: Option<&'a [Range]>,
}

/// The client format of a stored event.
pub fn client_event(e: &StoredEvent, version: &RoomVersion, reader: Reader<'_>, now_ms: u64) -> Value {
    let pdu: Map<String, Value> = serde_json::from_str(&e.json).unwrap_or_default();
    let mut content = pdu.get("content").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut unsigned = Map::new();
    if e.sender_erased != 0.0 && reader.joined.is_some_and(|joined| !in_ranges(joined, e.position())) {
        content = redacted_content(content, &e.kind, version);
    }
    if let Some(redaction_json) = &e.redaction_json {
        content = redacted_content(content, &e.kind, version);
        let redaction = StoredEvent {
            json: redaction_json.clone(),
            event_id: e.redaction_id.clone().unwrap_or_default(),
            kind: "m.room.redaction".into(),
            state_key: None,
            redaction_json: None,
            redaction_id: None,
            prev_state: None,
            ..e.clone()
        };
        // The redaction's own sender, timestamp and content come from its PDU.
        let mut because =
            client_event(&redaction, version, Reader { user_id: "", device_id: None, joined: None }, now_ms);
        if let Some(o) = because.as_object_mut() {
            o.remove("unsigned");
        }
        unsigned.insert("redacted_because".into(), because);
    }
    let mut event = Map::new();
    event.insert("content".into(), content);
    event.insert("event_id".into(), e.event_id.clone().into());
    for field in ["origin_server_ts", "sender", "type", "state_key", "redacts"] {
        if let Some(v) = pdu.get(field) {
            event.insert(field.into(), v.clone());
        }
    }
    event.insert("room_id".into(), e.room_id.clone().into());
    // Since v11 `redacts` lives in the content; clients still read the top-level one.
    if e.redaction_json.is_none() && !event.contains_key("redacts") {
        if let Some(redacts) = event["content"].get("redacts").cloned() {
            event.insert("redacts".into(), redacts);
        }
    }
    let ts = pdu.get("origin_server_ts").and_then(Value::as_u64).unwrap_or(0);
    unsigned.insert("age".into(), now_ms.saturating_sub(ts).into());
    if let (Some(device), Some(txn_device), Some(txn_id)) = (reader.device_id, &e.txn_device_id, &e.txn_id) {
        if device == txn_device && reader.user_id == e.sender {
            unsigned.insert("transaction_id".into(), txn_id.clone().into());
        }
    }
    if let Some(prev) = e.prev_state.as_deref().and_then(|p| serde_json::from_str::<Map<String, Value>>(p).ok()) {
        for (from, to) in [("content", "prev_content"), ("sender", "prev_sender"), ("event_id", "replaces_state")] {
            if let Some(v) = prev.get(from) {
                unsigned.insert(to.into(), v.clone());
            }
        }
    }
    event.insert("unsigned".into(), Value::Object(unsigned));
    Value::Object(event)
}

/// A content with only the keys the room version's redaction algorithm keeps.
pub fn redacted_content(content: Value, kind: &str, version: &RoomVersion) -> Value {
    let Ok(mut object) = serde_json::from_value::<CanonicalJsonObject>(content) else {
        return Value::Object(Map::new());
    };
    redact_content_in_place(&mut object, &version.rules.redaction, kind);
    serde_json::to_value(object).unwrap_or_else(|_| Value::Object(Map::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(json: Value, redaction: Option<Value>) -> StoredEvent {
        StoredEvent {
            stream_ordering: 5.0,
            event_id: "$e".into(),
            room_id: "!r:hs".into(),
            kind: json["type"].as_str().unwrap().into(),
            state_key: json.get("state_key").and_then(Value::as_str).map(Into::into),
            sender: json["sender"].as_str().unwrap().into(),
            origin_server_ts: 1000.0,
            membership: None,
            txn_device_id: Some("DEV".into()),
            txn_id: Some("t1".into()),
            prev_state: None,
            json: json.to_string(),
            redaction_json: redaction.map(|r| r.to_string()),
            redaction_id: Some("$r".into()),
            sender_erased: 0.0,
        }
    }

    #[test]
    fn client_fields_only_and_transaction_id_for_the_sender_device() {
        let v = RoomVersion::parse("12").unwrap();
        let e = stored(
            json!({"type": "m.room.message", "sender": "@a:hs", "content": {"body": "hi"}, "origin_server_ts": 1000,
                   "depth": 4, "auth_events": [], "prev_events": [], "hashes": {}, "signatures": {}}),
            None,
        );
        let own = client_event(&e, &v, Reader { user_id: "@a:hs", device_id: Some("DEV"), joined: None }, 1500);
        assert_eq!(own["unsigned"]["transaction_id"], "t1");
        assert_eq!(own["unsigned"]["age"], 500);
        assert_eq!(own["room_id"], "!r:hs");
        for hidden in ["depth", "auth_events", "prev_events", "hashes", "signatures"] {
            assert!(own.get(hidden).is_none(), "{hidden}");
        }
        let other = client_event(&e, &v, Reader { user_id: "@b:hs", device_id: Some("DEV"), joined: None }, 1500);
        assert!(other["unsigned"].get("transaction_id").is_none());
    }

    #[test]
    fn redacted_events_lose_their_content_and_say_why() {
        let v = RoomVersion::parse("11").unwrap();
        let e = stored(
            json!({"type": "m.room.message", "sender": "@a:hs", "content": {"body": "secret"}, "origin_server_ts": 1000}),
            Some(json!({"type": "m.room.redaction", "sender": "@a:hs", "content": {"redacts": "$e", "reason": "oops"},
                        "origin_server_ts": 1200})),
        );
        let out = client_event(&e, &v, Reader { user_id: "@b:hs", device_id: None, joined: None }, 2000);
        assert_eq!(out["content"], json!({}));
        assert_eq!(out["unsigned"]["redacted_because"]["event_id"], "$r");
        assert_eq!(out["unsigned"]["redacted_because"]["content"]["reason"], "oops");
        assert_eq!(out["unsigned"]["redacted_because"]["redacts"], "$e");
    }

    #[test]
    fn an_erased_senders_events_are_redacted_for_who_was_not_joined_then() {
        let v = RoomVersion::parse("12").unwrap();
        let mut e = stored(
            json!({"type": "m.room.message", "sender": "@a:hs", "content": {"body": "mine"}, "origin_server_ts": 1000}),
            None,
        );
        e.redaction_id = None;
        let joined_then = [Range { first: 1, last: 9 }];
        let joined_later = [Range { first: 6, last: 9 }];
        let read = |e: &StoredEvent, joined: &[Range]| {
            client_event(e, &v, Reader { user_id: "@b:hs", device_id: None, joined: Some(joined) }, 2000)
        };
        assert_eq!(read(&e, &joined_later)["content"]["body"], "mine", "not erased");
        e.sender_erased = 1.0;
        assert_eq!(read(&e, &joined_then)["content"]["body"], "mine");
        let redacted = read(&e, &joined_later);
        assert_eq!(redacted["content"], json!({}));
        assert!(redacted["unsigned"].get("redacted_because").is_none());
    }
}
