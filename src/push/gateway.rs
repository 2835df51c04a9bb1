//! What goes to a push gateway (`POST /_matrix/push/v1/notify`) and how often it is tried: the
//! request bodies, as Synapse builds them, and the retry schedule. Pure, natively tested; the
//! `PushQueue` object does the sending.

use serde_json::{json, Map, Value};

use super::notification::EventNotification;
use crate::storage::pushers::Pusher;

/// The path every http pusher's URL must have.
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";
/// The first wait after a failure; each further failure doubles it, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: u64 = 1_000;
pub const MAX_RETRY_DELAY_MS: u64 = 60 * 60 * 1_000;
/// A notification still undelivered this long after it was queued is dropped when a try fails,
/// as Synapse gives up on one after a day of failures: a day-old alert is no use.
pub const GIVE_UP_AFTER_MS: u64 = 24 * 60 * 60 * 1_000;

/// One pusher as a gateway request addresses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub app_id: String,
    pub pushkey: String,
    pub url: String,
    /// Seconds, as Synapse sends it.
    pub pushkey_ts: u64,
    /// The pusher's `data` less `url`, as the spec says to forward it.
    pub data: Map<String, Value>,
    /// `data.format` is `event_id_only`.
    pub event_id_only: bool,
}

impl Target {
    /// `None` for a pusher whose data has no URL (the pushers endpoint never stores one).
    pub fn new(pusher: &Pusher) -> Option<Target> {
        let mut data: Map<String, Value> = serde_json::from_str(&pusher.data).ok()?;
        let Some(Value::String(url)) = data.remove("url") else { return None };
        Some(Target {
            app_id: pusher.app_id.clone(),
            pushkey: pusher.pushkey.clone(),
            url,
            pushkey_ts: pusher.pushkey_ts / 1000,
            event_id_only: data.get("format").and_then(Value::as_str) == Some("event_id_only"),
            data,
        })
    }

    fn device(&self, tweaks: Option<&Map<String, Value>>) -> Value {
        let mut device = json!({
            "app_id": self.app_id,
            "pushkey": self.pushkey,
            "pushkey_ts": self.pushkey_ts,
            "data": self.data,
        });
        if let Some(tweaks) = tweaks.filter(|t| !t.is_empty()) {
            device["tweaks"] = Value::Object(tweaks.clone());
        }
        device
    }
}

/// The request for one event. `event_id_only` pushers get the event's ID, room, priority and
/// the counts; the others get every event field too, and the rule's tweaks. Zero counts are
/// omitted, as the spec asks.
pub fn event_request(n: &EventNotification, target: &Target, unread: u64) -> Value {
    let mut counts = Map::new();
    if unread > 0 {
        counts.insert("unread".into(), unread.into());
    }
    let mut notification = Map::new();
    notification.insert("event_id".into(), n.event_id.clone().into());
    notification.insert("room_id".into(), n.room_id.clone().into());
    notification.insert("prio".into(), n.prio.clone().into());
    notification.insert("counts".into(), counts.into());
    if target.event_id_only {
        notification.insert("devices".into(), json!([target.device(None)]));
        return json!({ "notification": notification });
    }
    notification.insert("type".into(), n.kind.clone().into());
    notification.insert("sender".into(), n.sender.clone().into());
    let optional =
        [("sender_display_name", &n.sender_display_name), ("room_name", &n.room_name), ("room_alias", &n.room_alias)];
    for (field, value) in optional {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            notification.insert(field.into(), value.clone().into());
        }
    }
    if let Some(membership) = &n.membership {
        notification.insert("membership".into(), membership.clone().into());
        notification.insert("user_is_target".into(), n.user_is_target.into());
    }
    if n.content.as_object().is_some_and(|c| !c.is_empty()) {
        notification.insert("content".into(), n.content.clone());
    }
    notification.insert("devices".into(), json!([target.device(Some(&n.tweaks))]));
    json!({ "notification": notification })
}

/// A counts-only update, exactly as Synapse's `_send_badge`. The count goes even when it is
/// zero: it is the update's whole message, and a zero clears the app's badge.
pub fn badge_request(target: &Target, unread: u64) -> Value {
    json!({
        "notification": {
            "id": "",
            "type": null,
            "sender": "",
            "counts": { "unread": unread },
            "devices": [target.device(None)],
        }
    })
}

/// Whether a 2xx answer rejects `pushkey`. Only the pushkey that was sent counts, as in Synapse;
/// an answer without a `rejected` list rejects nothing.
pub fn rejects(answer: &str, pushkey: &str) -> bool {
    serde_json::from_str::<Value>(answer)
        .ok()
        .and_then(|a| a.get("rejected").and_then(Value::as_array).cloned())
        .is_some_and(|rejected| rejected.iter().any(|k| k.as_str() == Some(pushkey)))
}

/// The wait before the next try after a failure, given the wait before this one (0 after a
/// success): 1, 2, 4, 8 s … up to an hour.
pub fn next_retry_delay(previous_ms: u64) -> u64 {
    if previous_ms == 0 {
        FIRST_RETRY_DELAY_MS
    } else {
        previous_ms.saturating_mul(2).min(MAX_RETRY_DELAY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher(data: Value) -> Pusher {
        Pusher {
            app_id: "com.example.app".into(),
            pushkey: "key1".into(),
            kind: "http".into(),
            app_display_name: "App".into(),
            device_display_name: "Phone".into(),
            profile_tag: None,
            lang: "en".into(),
            data: data.to_string(),
            pushkey_ts: 1_700_000_123_456,
        }
    }

    fn message() -> EventNotification {
        let mut tweaks = Map::new();
        tweaks.insert("sound".into(), "default".into());
        EventNotification {
            event_id: "$event".into(),
            room_id: "!room:localhost".into(),
            event_stream: 7,
            kind: "m.room.message".into(),
            sender: "@bob:localhost".into(),
            sender_display_name: Some("Bob".into()),
            room_name: Some("Chat".into()),
            room_alias: None,
            user_is_target: false,
            membership: None,
            content: json!({"msgtype": "m.text", "body": "hi"}),
            prio: "high".into(),
            tweaks,
        }
    }

    #[test]
    fn target_drops_the_url_and_keeps_the_rest_of_data() {
        let url = "http://127.0.0.1:9/_matrix/push/v1/notify";
        let t = Target::new(&pusher(json!({"url": url, "format": "event_id_only", "custom": 1}))).unwrap();
        assert_eq!(t.url, url);
        assert_eq!(Value::Object(t.data.clone()), json!({"format": "event_id_only", "custom": 1}));
        assert!(t.event_id_only);
        assert_eq!(t.pushkey_ts, 1_700_000_123);
        assert!(!Target::new(&pusher(json!({"url": url}))).unwrap().event_id_only);
        assert!(Target::new(&pusher(json!({"format": "event_id_only"}))).is_none());
    }

    #[test]
    fn full_format_carries_the_event() {
        let t = Target::new(&pusher(json!({"url": "https://gw/_matrix/push/v1/notify"}))).unwrap();
        let body = event_request(&message(), &t, 2);
        assert_eq!(
            body,
            json!({"notification": {
                "event_id": "$event", "room_id": "!room:localhost", "type": "m.room.message",
                "sender": "@bob:localhost", "sender_display_name": "Bob", "room_name": "Chat",
                "prio": "high", "content": {"msgtype": "m.text", "body": "hi"}, "counts": {"unread": 2},
                "devices": [{"app_id": "com.example.app", "pushkey": "key1", "pushkey_ts": 1_700_000_123,
                             "data": {}, "tweaks": {"sound": "default"}}],
            }})
        );
    }

    #[test]
    fn member_events_say_whom_they_target_and_zero_counts_are_omitted() {
        let t = Target::new(&pusher(json!({"url": "https://gw/_matrix/push/v1/notify"}))).unwrap();
        let mut invite = message();
        invite.kind = "m.room.member".into();
        invite.membership = Some("invite".into());
        invite.user_is_target = true;
        invite.content = json!({});
        invite.tweaks = Map::new();
        let n = &event_request(&invite, &t, 0)["notification"];
        assert_eq!(n["membership"], "invite");
        assert_eq!(n["user_is_target"], true);
        assert_eq!(n["counts"], json!({}));
        assert!(n.get("content").is_none());
        assert!(n["devices"][0].get("tweaks").is_none());
        // A message says nothing of targets.
        assert!(event_request(&message(), &t, 1)["notification"].get("user_is_target").is_none());
    }

    #[test]
    fn event_id_only_carries_ids_priority_and_counts() {
        let t = Target::new(&pusher(json!({"url": "https://gw/_matrix/push/v1/notify", "format": "event_id_only"})))
            .unwrap();
        assert_eq!(
            event_request(&message(), &t, 3),
            json!({"notification": {
                "event_id": "$event", "room_id": "!room:localhost", "prio": "high", "counts": {"unread": 3},
                "devices": [{"app_id": "com.example.app", "pushkey": "key1", "pushkey_ts": 1_700_000_123,
                             "data": {"format": "event_id_only"}}],
            }})
        );
    }

    #[test]
    fn badge_is_synapses_counts_only_update() {
        let t = Target::new(&pusher(json!({"url": "https://gw/_matrix/push/v1/notify", "x": "y"}))).unwrap();
        assert_eq!(
            badge_request(&t, 0),
            json!({"notification": {
                "id": "", "type": null, "sender": "", "counts": {"unread": 0},
                "devices": [{"app_id": "com.example.app", "pushkey": "key1", "pushkey_ts": 1_700_000_123,
                             "data": {"x": "y"}}],
            }})
        );
    }

    #[test]
    fn only_the_sent_pushkey_is_rejected() {
        assert!(rejects(r#"{"rejected": ["key1"]}"#, "key1"));
        assert!(!rejects(r#"{"rejected": ["other"]}"#, "key1"));
        assert!(!rejects(r#"{"rejected": []}"#, "key1"));
        assert!(!rejects("{}", "key1"));
        assert!(!rejects("not json", "key1"));
    }

    #[test]
    fn retries_double_from_a_second_to_an_hour() {
        let mut delays = vec![];
        let mut delay = 0;
        for _ in 0..15 {
            delay = next_retry_delay(delay);
            delays.push(delay / 1000);
        }
        assert_eq!(&delays[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(delays[11], 2048);
        assert_eq!(&delays[12..], &[3600, 3600, 3600]);
    }
}
