//! The extensions of a sliding sync: `to_device`, `e2ee`, `account_data`, `receipts` and
//! `typing`, each answered from the same stores as `/sync`'s sections. The ones about rooms cover
//! the rooms of the lists and subscriptions they name (all, by default).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::user_sync::Positions;
use crate::error::{invalid_param, Result};
use crate::push::rules;
use crate::storage::{account_data, e2e_one_time_keys, receipts, to_device, typing};
use crate::time::now_ms;

use super::super::device_lists::{self, DeviceLists};
use super::super::keys::SIGNED_CURVE25519;
use super::super::sync::{push_rules_content, MAX_TO_DEVICE, MAX_TO_DEVICE_BYTES};
use super::request::{Scoped, ToDevice};

/// The rooms of a response that extensions may cover: each list's window and the subscribed rooms
/// the user is in.
pub struct Scope<'a> {
    pub lists: &'a BTreeMap<String, Vec<String>>,
    pub subscriptions: &'a [String],
}

impl Scope<'_> {
    pub fn rooms(&self, ext: &Scoped) -> BTreeSet<String> {
        let mut rooms: BTreeSet<String> = BTreeSet::new();
        for (name, ids) in self.lists {
            if ext.covers_list(name) {
                rooms.extend(ids.iter().cloned());
            }
        }
        rooms.extend(self.subscriptions.iter().filter(|r| ext.covers_subscription(r)).cloned());
        rooms
    }
}

/// An extension's answer, and whether it says anything new (a long poll returns for that).
pub struct Answer {
    pub json: Value,
    pub news: bool,
}

/// To-device messages after `since`, which a request past them acknowledges (they are deleted,
/// as `/sync` does); returns the position to wait beyond too.
pub async fn to_device(cx: &Ctx, user: &str, device: &str, ext: &ToDevice, head: u64) -> Result<(Answer, u64)> {
    let since = match ext.since.as_deref() {
        None => 0,
        Some(raw) => raw.parse::<u64>().map_err(|_| invalid_param(format!("Unknown to-device token {raw:?}")))?,
    };
    if since > 0 {
        cx.db.run(to_device::delete_upto(&cx.db, user, device, since)?).await?;
    }
    let limit = ext.limit.unwrap_or(MAX_TO_DEVICE).clamp(1, MAX_TO_DEVICE);
    let rows = match head > since {
        true => to_device::pending(&cx.db, user, device, since, limit, MAX_TO_DEVICE_BYTES).await?,
        false => Vec::new(),
    };
    let next = rows.last().map_or(since, |m| m.stream_id);
    let events: Vec<Value> = rows
        .iter()
        .map(|m| {
            let content: Value = serde_json::from_str(&m.content).unwrap_or_else(|_| json!({}));
            json!({"sender": m.sender, "type": m.kind, "content": content})
        })
        .collect();
    let news = !events.is_empty();
    Ok((Answer { json: json!({"next_batch": next.to_string(), "events": events}), news }, next))
}

/// Device list changes since the previous response (none the first time), and the device's key
/// counts, which are always given and are no news by themselves.
pub async fn e2ee(cx: &Ctx, user: &str, device: &str, from: Option<&Positions>, upto: &Positions) -> Result<Answer> {
    let lists = async {
        match from {
            Some(from) => device_lists::between(&cx.db, user, from, upto).await,
            None => Ok(DeviceLists::default()),
        }
    };
    let (lists, mut keys) = futures::try_join!(lists, e2e_one_time_keys::counts_and_fallbacks(&cx.db, user, device))?;
    keys.one_time.entry(SIGNED_CURVE25519.to_owned()).or_insert(0);
    let news = !lists.is_empty();
    let json = json!({
        "device_lists": {"changed": lists.changed, "left": lists.left},
        "device_one_time_keys_count": keys.one_time,
        "device_unused_fallback_key_types": keys.unused_fallback,
    });
    Ok(Answer { json, news })
}

/// Global account data changed since the previous response (all of it the first time, with the
/// push rules), and the account data of the covered rooms: all of it for a room sent for the
/// first time.
pub async fn account_data(
    cx: &Ctx,
    user: &str,
    rooms: &BTreeSet<String>,
    initial: &[String],
    from: Option<&Positions>,
    upto: &Positions,
) -> Result<Answer> {
    let from_position = from.map_or(0, |f| f.account_data);
    let read_all = from.is_none() || rooms.iter().any(|r| initial.contains(r));
    let after = if read_all { 0 } else { from_position };
    let rows = match upto.account_data > after {
        true => account_data::changed_since(&cx.db, user, after, upto.account_data).await?,
        false => Vec::new(),
    };
    let mut global = Vec::new();
    let mut by_room: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut push_rules_due = from.is_none();
    for row in rows {
        if row.room_id.is_empty() {
            if row.stream_id <= from_position {
                continue;
            }
            let content = match row.kind == rules::ACCOUNT_DATA_TYPE {
                true => {
                    push_rules_due = false;
                    push_rules_content(cx, Some(&row.content))?
                }
                false => serde_json::from_str(&row.content).unwrap_or_else(|_| json!({})),
            };
            global.push(json!({"type": row.kind, "content": content}));
        } else if rooms.contains(&row.room_id) && (row.stream_id > from_position || initial.contains(&row.room_id)) {
            let content: Value = serde_json::from_str(&row.content).unwrap_or_else(|_| json!({}));
            by_room.entry(row.room_id).or_default().push(json!({"type": row.kind, "content": content}));
        }
    }
    if push_rules_due {
        global.push(json!({"type": rules::ACCOUNT_DATA_TYPE, "content": push_rules_content(cx, None)?}));
    }
    let news = !global.is_empty() || !by_room.is_empty();
    Ok(Answer { json: json!({"global": global, "rooms": by_room}), news })
}

/// Receipts of the covered joined rooms: all of them for a room sent for the first time, else
/// those written since the previous response (`since`, read with the rooms).
pub async fn receipts(
    cx: &Ctx,
    user: &str,
    rooms: &BTreeSet<String>,
    initial: &[String],
    since: &BTreeMap<String, Value>,
    upto: &Positions,
) -> Result<Answer> {
    let initial: Vec<String> = initial.iter().filter(|r| rooms.contains(*r)).cloned().collect();
    let all = receipts::since(&cx.db, &initial, user, 0, upto.receipts).await?;
    let mut out = Map::new();
    for room in rooms {
        let content = match initial.contains(room) {
            true => all.get(room),
            false => since.get(room),
        };
        if let Some(content) = content {
            out.insert(room.clone(), json!({"type": "m.receipt", "content": content}));
        }
    }
    let news = !out.is_empty();
    Ok(Answer { json: json!({ "rooms": out }), news })
}

/// Who types in the covered joined rooms: in a room sent for the first time if anyone does, else
/// where it changed since the previous response.
pub async fn typing(
    cx: &Ctx,
    rooms: &[String],
    initial: &[String],
    from: Option<&Positions>,
    upto: &Positions,
    ignored: &[String],
) -> Result<Answer> {
    let moved = from.is_none_or(|f| upto.typing > f.typing);
    let any_initial = rooms.iter().any(|r| initial.contains(r));
    if rooms.is_empty() || (!moved && !any_initial) {
        return Ok(Answer { json: json!({"rooms": {}}), news: false });
    }
    let changed = async {
        match from {
            Some(f) if moved => typing::changed_since(&cx.db, rooms, f.typing, upto.typing).await,
            _ => Ok(Vec::new()),
        }
    };
    let (now, changed) = futures::try_join!(typing::in_rooms(&cx.db, rooms, now_ms()), changed)?;
    let mut out = Map::new();
    for room in rooms {
        let users: Vec<&String> = now.get(room).into_iter().flatten().filter(|u| !ignored.contains(u)).collect();
        let due = match initial.contains(room) {
            true => !users.is_empty(),
            false => changed.contains(room),
        };
        if due {
            out.insert(room.clone(), json!({"type": "m.typing", "content": {"user_ids": users}}));
        }
    }
    let news = !out.is_empty();
    Ok(Answer { json: json!({ "rooms": out }), news })
}
