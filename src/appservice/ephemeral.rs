//! What a transaction carries beside room events: ephemeral data (MSC2409: typing, receipts,
//! presence; MSC4203: to-device messages) for services with `receive_ephemeral`, and MSC3202's
//! device lists, one-time key counts and unused fallback key types for services with
//! `org.matrix.msc3202`.
//!
//! The streams live in D1. An endpoint that moves one *pokes* the `Appservice` objects of the
//! services that may care, after its response; each object then reads the streams past its own
//! persisted positions ([`crate::storage::appservice_streams`]), keeps what concerns its
//! service, and sends it in its next transaction. A lost poke delays data until the next one;
//! it loses nothing, as the positions move only when a transaction is delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde_json::{json, Map, Value};
use worker::Env;

use super::{registry, Scope, Service};
use crate::client::presence::presence_event;
use crate::context::Ctx;
use crate::storage::appservice_streams::{Changes, FallbackTypes, KeyCounts, Positions, Wanted, LIMIT};
use crate::storage::receipts::edu_contents;

/// Which streams a poke announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Typing, receipts, presence or to-device messages.
    Ephemeral,
    /// The device list stream or a device's keys.
    DeviceLists,
}

impl Service {
    pub fn wants(&self) -> Wanted {
        Wanted { ephemeral: self.registration.receive_ephemeral, device_lists: self.registration.msc3202 }
    }

    fn takes(&self, stream: Stream) -> bool {
        self.registration.url.is_some()
            && match stream {
                Stream::Ephemeral => self.registration.receive_ephemeral,
                Stream::DeviceLists => self.registration.msc3202,
            }
    }
}

/// After the response, pokes the services that take `stream` and, when `users` is given, are
/// interested in one of them (the users the change concerns) or may be through a room (a rooms
/// or aliases namespace). No service, no work.
pub fn poke(cx: &Ctx, stream: Stream, users: Option<Vec<String>>) {
    cx.in_background(poke_now(cx.env.clone(), cx.config.server_name.to_string(), stream, users));
}

/// [`poke`], run by the caller: for a Durable Object, which has no `Ctx`.
pub async fn poke_now(env: Env, server_name: String, stream: Stream, users: Option<Vec<String>>) {
    {
        let Ok(db) = crate::storage::Db::new(&env) else { return };
        let services = match registry::all(&db, &server_name).await {
            Ok(services) => services,
            Err(e) => return crate::log::error(&format!("application services: {e:?}")),
        };
        let poked: Vec<Rc<Service>> = services
            .iter()
            .map(|e| e.service.clone())
            .filter(|s| s.takes(stream))
            .filter(|s| {
                let by_room =
                    !s.registration.namespaces.rooms.is_empty() || !s.registration.namespaces.aliases.is_empty();
                by_room || users.as_ref().is_none_or(|users| users.iter().any(|u| s.is_interested_in_user(u)))
            })
            .collect();
        let pokes = poked.iter().map(|s| crate::durable_objects::appservice::poke(&env, s.id()));
        for result in futures::future::join_all(pokes).await {
            if let Err(e) = result {
                // The data is in D1; the next poke or transaction picks it up.
                crate::log::error(&format!("poking an application service: {e:?}"));
            }
        }
    }
}

/// What of the changes goes to one service, and the positions that cover them.
#[derive(Debug, Default)]
pub struct Extras {
    pub ephemeral: Vec<Value>,
    pub to_device: Vec<Value>,
    pub device_lists_changed: Vec<String>,
    /// The service's users that appear here: whose devices' key counts go along (MSC3202).
    pub users: BTreeSet<String>,
    pub upto: Positions,
    /// A stream had more than one transaction takes.
    pub more: bool,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.ephemeral.is_empty() && self.to_device.is_empty() && self.device_lists_changed.is_empty()
    }
}

/// Which rooms and users concern a service, from the members and aliases of the rooms read.
struct Interest<'a> {
    service: &'a Service,
    changes: &'a Changes,
    rooms_of: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Interest<'a> {
    fn new(service: &'a Service, changes: &'a Changes) -> Self {
        let mut rooms_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (room, members) in &changes.members {
            for m in members {
                rooms_of.entry(m.as_str()).or_default().push(room.as_str());
            }
        }
        Interest { service, changes, rooms_of }
    }

    /// A room concerns the service by its ID, an alias, or a joined member in a namespace.
    fn room(&self, room_id: &str) -> bool {
        self.service.room_in_namespace(room_id)
            || self
                .changes
                .aliases
                .get(room_id)
                .is_some_and(|a| a.iter().any(|a| self.service.alias_in_namespace(a, Scope::Any)))
            || self.has_member(room_id)
    }

    fn has_member(&self, room_id: &str) -> bool {
        self.changes.members.get(room_id).is_some_and(|m| m.iter().any(|u| self.service.is_interested_in_user(u)))
    }

    /// A user concerns the service when in a namespace or in a room that concerns it, as in
    /// Synapse's `_is_appservice_interested_in_device_lists_of_user`.
    fn user(&self, user_id: &str) -> bool {
        self.service.is_interested_in_user(user_id)
            || self.rooms_of.get(user_id).is_some_and(|rooms| rooms.iter().any(|r| self.room(r)))
    }
}

/// Picks what concerns `service` out of `changes` (read from `from`), in the MSC2409, MSC4203
/// and MSC3202 formats.
pub fn select(service: &Service, changes: &Changes, from: &Positions, now_ms: u64) -> Extras {
    let wanted = service.wants();
    let interest = Interest::new(service, changes);
    let heads = &changes.heads;
    // A stream read up to its limit continues from its last row; else the batch saw its head.
    let upto = |rows: usize, last: Option<f64>, head: u64, from: u64| match last {
        Some(last) if rows as u64 >= LIMIT => last as u64,
        _ => head.max(from),
    };
    let mut extras = Extras {
        upto: Positions {
            typing: heads.typing.max(from.typing),
            receipts: upto(
                changes.receipts.len(),
                changes.receipts.last().map(|r| r.stream_id),
                heads.receipts,
                from.receipts,
            ),
            presence: upto(
                changes.presence.len(),
                changes.presence.last().map(|r| r.stream_id),
                heads.presence,
                from.presence,
            ),
            to_device: upto(
                changes.to_device.len(),
                changes.to_device.last().map(|r| r.stream_id),
                heads.to_device,
                from.to_device,
            ),
            device_lists: upto(
                changes.device_lists.len(),
                changes.device_lists.last().map(|r| r.stream_id),
                heads.device_lists,
                from.device_lists,
            ),
        },
        more: [changes.receipts.len(), changes.presence.len(), changes.to_device.len(), changes.device_lists.len()]
            .iter()
            .any(|n| *n as u64 >= LIMIT),
        ..Extras::default()
    };
    let note = |user: &str, extras: &mut Extras| {
        if service.is_interested_in_user(user) {
            extras.users.insert(user.to_owned());
        }
    };
    if wanted.ephemeral {
        let mut typing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for row in &changes.typing {
            let users = typing.entry(row.room_id.as_str()).or_default();
            users.extend(row.user_id.as_deref());
        }
        for (room, users) in typing.into_iter().filter(|(room, _)| interest.room(room)) {
            users.iter().for_each(|u| note(u, &mut extras));
            extras.ephemeral.push(json!({"type": "m.typing", "room_id": room, "content": {"user_ids": users}}));
        }
        let receipts: Vec<_> =
            changes.receipts.iter().filter(|r| interest.room(&r.receipt.room_id)).map(|r| r.receipt.clone()).collect();
        receipts.iter().for_each(|r| note(&r.user_id, &mut extras));
        for (room, content) in edu_contents(receipts) {
            extras.ephemeral.push(json!({"type": "m.receipt", "room_id": room, "content": content}));
        }
        for row in changes.presence.iter().filter(|p| interest.user(&p.presence.user_id)) {
            note(&row.presence.user_id, &mut extras);
            extras.ephemeral.push(presence_event(&row.presence, now_ms));
        }
        for m in changes.to_device.iter().filter(|m| service.is_interested_in_user(&m.user_id)) {
            note(&m.user_id, &mut extras);
            let content: Value = serde_json::from_str(&m.content).unwrap_or_else(|_| Value::Object(Map::new()));
            extras.to_device.push(json!({
                "type": m.kind, "sender": m.sender, "content": content,
                "to_user_id": m.user_id, "to_device_id": m.device_id,
            }));
        }
    }
    if wanted.device_lists {
        let mut changed = BTreeSet::new();
        for row in changes.device_lists.iter().filter(|r| interest.user(&r.user_id)) {
            note(&row.user_id, &mut extras);
            changed.insert(row.user_id.clone());
        }
        extras.device_lists_changed = changed.into_iter().collect();
    }
    extras
}

/// A transaction's body: its events, and what `extras` and the key counts add under both the
/// stable and the unstable names (mautrix reads either).
pub fn transaction_body(
    events: Vec<Value>,
    extras: Option<&Extras>,
    keys: Option<&(KeyCounts, FallbackTypes)>,
) -> Value {
    let mut body = Map::new();
    body.insert("events".into(), Value::Array(events));
    let mut both = |stable: &str, unstable: &[&str], value: Value| {
        for name in unstable {
            body.insert((*name).into(), value.clone());
        }
        body.insert(stable.into(), value);
    };
    if let Some(extras) = extras {
        if !extras.ephemeral.is_empty() {
            both("ephemeral", &["de.sorunome.msc2409.ephemeral"], json!(extras.ephemeral));
        }
        if !extras.to_device.is_empty() {
            both("to_device", &["de.sorunome.msc2409.to_device"], json!(extras.to_device));
        }
        if !extras.device_lists_changed.is_empty() {
            let lists = json!({"changed": extras.device_lists_changed, "left": []});
            both("device_lists", &["org.matrix.msc3202.device_lists"], lists);
        }
    }
    if let Some((counts, fallbacks)) = keys.filter(|(counts, _)| !counts.is_empty()) {
        both(
            "device_one_time_keys_count",
            &["org.matrix.msc3202.device_one_time_keys_count", "org.matrix.msc3202.device_one_time_key_counts"],
            json!(counts),
        );
        // Every counted device has a list, empty when its fallback key is used or absent.
        let mut types = Map::new();
        for (user, devices) in counts {
            let mut per_device = Map::new();
            for device in devices.keys() {
                let used = fallbacks.get(user).and_then(|d| d.get(device)).cloned().unwrap_or_default();
                per_device.insert(device.clone(), json!(used));
            }
            types.insert(user.clone(), Value::Object(per_device));
        }
        both(
            "device_unused_fallback_key_types",
            &["org.matrix.msc3202.device_unused_fallback_key_types"],
            Value::Object(types),
        );
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::appservice_streams::{DeviceListRow, PresenceRow, ReceiptRow, ToDeviceRow, TypingRow};
    use crate::storage::{presence, receipts};

    fn service() -> Service {
        let registration = serde_json::from_value(json!({
            "id": "irc", "url": "http://127.0.0.1:9000", "as_token": "a", "hs_token": "h",
            "sender_localpart": "ircbot",
            "namespaces": {"users": [{"exclusive": true, "regex": "@irc_.*"}], "aliases": [], "rooms": []},
            "receive_ephemeral": true, "org.matrix.msc3202": true,
        }))
        .unwrap();
        Service::new(registration, "hs").unwrap()
    }

    fn receipt(stream_id: f64, room: &str, user: &str) -> ReceiptRow {
        ReceiptRow {
            stream_id,
            receipt: receipts::ReceiptRow {
                room_id: room.into(),
                receipt_type: "m.read".into(),
                user_id: user.into(),
                thread_id: String::new(),
                event_id: "$e".into(),
                ts: 5.0,
            },
        }
    }

    fn changes() -> Changes {
        let members = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Changes {
            heads: Positions { typing: 10, receipts: 20, presence: 30, to_device: 40, device_lists: 50 },
            typing: vec![
                TypingRow { room_id: "!bridged".into(), user_id: Some("@alice:hs".into()) },
                TypingRow { room_id: "!private".into(), user_id: Some("@carol:hs".into()) },
            ],
            receipts: vec![receipt(11.0, "!bridged", "@alice:hs"), receipt(12.0, "!private", "@carol:hs")],
            presence: ["@alice:hs", "@carol:hs", "@irc_bob:hs"]
                .iter()
                .enumerate()
                .map(|(i, u)| PresenceRow {
                    stream_id: 21.0 + i as f64,
                    presence: presence::PresenceRow {
                        user_id: u.to_string(),
                        presence: "online".into(),
                        status_msg: None,
                        last_active_ts: 0.0,
                        currently_active: 0.0,
                    },
                })
                .collect(),
            to_device: vec![
                ToDeviceRow {
                    stream_id: 31.0,
                    user_id: "@irc_bob:hs".into(),
                    device_id: "D".into(),
                    sender: "@alice:hs".into(),
                    kind: "m.test".into(),
                    content: "{\"a\":1}".into(),
                },
                ToDeviceRow {
                    stream_id: 32.0,
                    user_id: "@carol:hs".into(),
                    device_id: "C".into(),
                    sender: "@alice:hs".into(),
                    kind: "m.test".into(),
                    content: "{}".into(),
                },
            ],
            device_lists: vec![
                DeviceListRow { stream_id: 41.0, user_id: "@alice:hs".into() },
                DeviceListRow { stream_id: 42.0, user_id: "@carol:hs".into() },
            ],
            members: BTreeMap::from([
                ("!bridged".to_owned(), members(&["@alice:hs", "@irc_bob:hs"])),
                ("!private".to_owned(), members(&["@carol:hs"])),
            ]),
            aliases: BTreeMap::new(),
        }
    }

    #[test]
    fn only_what_concerns_the_service_and_positions_at_the_heads() {
        let extras = select(&service(), &changes(), &Positions::default(), 1000);
        let kinds: Vec<(&str, Option<&str>)> = extras
            .ephemeral
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e.get("room_id").or(e.get("sender")).and_then(Value::as_str)))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("m.typing", Some("!bridged")),
                ("m.receipt", Some("!bridged")),
                ("m.presence", Some("@alice:hs")),
                ("m.presence", Some("@irc_bob:hs")),
            ]
        );
        assert_eq!(
            extras.to_device,
            vec![json!({"type": "m.test", "sender": "@alice:hs", "content": {"a": 1},
                        "to_user_id": "@irc_bob:hs", "to_device_id": "D"})]
        );
        assert_eq!(extras.device_lists_changed, vec!["@alice:hs".to_owned()]);
        assert_eq!(extras.users.iter().collect::<Vec<_>>(), vec!["@irc_bob:hs"]);
        assert_eq!(extras.upto, changes().heads);
        assert!(!extras.more);
    }

    #[test]
    fn a_stream_read_to_its_limit_continues_from_its_last_row() {
        let mut c = changes();
        c.receipts = (0..LIMIT).map(|i| receipt(100.0 + i as f64, "!private", "@carol:hs")).collect();
        c.heads.receipts = 500;
        let extras = select(&service(), &c, &Positions::default(), 1000);
        assert_eq!(extras.upto.receipts, 100 + LIMIT - 1);
        assert!(extras.more);
    }

    #[test]
    fn bodies_carry_stable_and_unstable_names() {
        let extras = select(&service(), &changes(), &Positions::default(), 1000);
        let counts = KeyCounts::from([(
            "@irc_bob:hs".to_owned(),
            BTreeMap::from([("D".to_owned(), BTreeMap::from([("signed_curve25519".to_owned(), 3)]))]),
        )]);
        let body = transaction_body(vec![json!({"event_id": "$x"})], Some(&extras), Some(&(counts, BTreeMap::new())));
        assert_eq!(body["events"], json!([{"event_id": "$x"}]));
        assert_eq!(body["ephemeral"], body["de.sorunome.msc2409.ephemeral"]);
        assert_eq!(body["to_device"], body["de.sorunome.msc2409.to_device"]);
        assert_eq!(body["device_lists"], json!({"changed": ["@alice:hs"], "left": []}));
        assert_eq!(body["org.matrix.msc3202.device_lists"], body["device_lists"]);
        assert_eq!(body["device_one_time_keys_count"]["@irc_bob:hs"]["D"]["signed_curve25519"], 3);
        assert_eq!(body["org.matrix.msc3202.device_one_time_key_counts"], body["device_one_time_keys_count"]);
        assert_eq!(body["device_unused_fallback_key_types"], json!({"@irc_bob:hs": {"D": []}}));
        let empty = transaction_body(vec![], None, None);
        assert_eq!(empty, json!({"events": []}));
    }
}
