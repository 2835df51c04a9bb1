//! Syncing: `GET /sync`.
//!
//! A sync reads D1 from the positions of its `since` token up to the positions it takes at its
//! start, and hands those out as `next_batch`. With nothing to report and a `timeout`, it waits
//! in the user's [`UserSync`](crate::durable_objects::user_sync) object, which a commit that
//! concerns the user wakes with a position, and then reads D1 again.
//!
//! # Tokens
//!
//! `s<events>_<account data>_<to-device>_<receipts>_<typing>_<presence>_<notifications>_<device
//! lists>`: one position per stream. The first part is also a room-history token (see
//! [`super::room_access`]), so `next_batch` works as a `from` of `/messages`. A token may end
//! early; the streams it leaves out are at 0.

use std::collections::BTreeMap;

use futures::future::{try_join_all, LocalBoxFuture};
use ruma_common::RoomId;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions, Waited, STREAMS};
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::push::rules;
use crate::room::client_format::{client_event, Reader};
use crate::storage::e2e_one_time_keys::{self, KeyCounts};
use crate::storage::event_push_actions::{self, Counts};
use crate::storage::events::{self, Direction, EventSelection, StoredEvent};
use crate::storage::{account_data, current_state, receipts, streams, to_device, typing};
use crate::time::now_ms;

use super::device_lists::{self, DeviceLists};
use super::filter::{self, Filter};
use super::keys::SIGNED_CURVE25519;
use super::presence::presence_event;
use super::relations::serve_bundled;
use super::room_access::{parse_bool, parse_limit, RoomView};
use super::rooms::{parse_room_id, reader, room_version};
use super::sent_members;

/// The timeline length when the filter sets none, as Synapse.
const DEFAULT_TIMELINE_LIMIT: u64 = 10;
const MAX_TIMELINE_LIMIT: u64 = 1000;
/// The state of an invite or knock that the user sees before joining.
pub(super) const STRIPPED_STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];
const HEROES: usize = 5;
/// How many times a sync reads D1 again because its UserSync object had just started.
const FRESH_RETRIES: usize = 3;
/// How long after a typing expiry a waiting sync looks again.
pub(super) const EXPIRY_SLACK_MS: u64 = 20;
/// To-device messages per sync, and the bytes of content they may start within (a message larger
/// than that comes alone); the rest come in the next one.
pub(super) const MAX_TO_DEVICE: u64 = 100;
pub(super) const MAX_TO_DEVICE_BYTES: u64 = 256 * 1024;

/// A sync token: the positions a sync covered.
pub fn sync_token(p: &Positions) -> String {
    let [events, account_data, to_device, receipts, typing, presence, notifications, device_lists] = p.as_array();
    format!("s{events}_{account_data}_{to_device}_{receipts}_{typing}_{presence}_{notifications}_{device_lists}")
}

pub fn parse_sync_token(raw: &str) -> Result<Positions> {
    let bad = || invalid_param(format!("Unknown sync token {raw:?}"));
    let parts: Vec<&str> = raw.strip_prefix('s').ok_or_else(bad)?.split('_').collect();
    if parts.is_empty() || parts.len() > STREAMS {
        return Err(bad());
    }
    let mut numbers = [0u64; STREAMS];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 16 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *slot = part.parse().map_err(|_| bad())?;
    }
    Ok(Positions::from_array(numbers))
}

/// What of the sync filter this sync applies.
#[derive(Debug, Clone, Default)]
pub(super) struct Options {
    pub filter: Filter,
    pub timeline_limit: u64,
    timeline: EventSelection,
    full_state: bool,
    /// Only what came after `since`, even in a newly joined room (the legacy `/events`).
    pub stream_only: bool,
}

pub(super) fn options(filter: Filter, full_state: bool) -> Options {
    let timeline = filter.room.timeline.selection();
    let timeline_limit = filter.room.timeline.limit_or(DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT);
    Options { filter, timeline_limit, timeline, full_state, stream_only: false }
}

impl Options {
    /// Whether the room filter and the timeline's room lists let this room through.
    fn includes_room(&self, room_id: &RoomId) -> bool {
        self.filter.room.includes_room(room_id) && self.filter.room.timeline.includes_room(room_id)
    }

    /// Keeps the state that passes the state filter, and with lazy loading only the members the
    /// timeline needs (and the reader) and, in a gap after `since`, the members that changed in
    /// it, as Synapse keeps them.
    fn retain_state(
        &self,
        room_id: &RoomId,
        state: &mut Vec<StoredEvent>,
        timeline: &Timeline,
        reader: &str,
        since: Option<u64>,
    ) {
        let filter = &self.filter.room.state;
        let senders: Vec<&str> = timeline.events.iter().map(|e| e.sender.as_str()).collect();
        state.retain(|e| {
            let sender = <&ruma_common::UserId>::try_from(e.sender.as_str()).ok();
            if !filter.matches(room_id, &e.kind, sender, false) {
                return false;
            }
            if filter.lazy_load_members && e.kind == "m.room.member" {
                let key = e.state_key.as_deref().unwrap_or_default();
                return key == reader || senders.contains(&key) || since.is_some_and(|s| e.position() > s);
            }
            true
        });
    }

    /// Narrows a served event to the filter's `event_fields`, if it names any.
    fn fields(&self, event: Value) -> Value {
        match &self.filter.event_fields {
            Some(fields) => only_fields(event, fields),
            None => event,
        }
    }
}

/// Keeps the dotted paths `fields` of an event (`content.body`, `unsigned.age`); `\.` is a literal
/// dot in a key.
fn only_fields(event: Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for field in fields {
        let path = split_field(field);
        let mut source = &event;
        let mut found = true;
        for key in &path {
            match source.get(key.as_str()) {
                Some(v) => source = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        insert_path(&mut out, &path, source.clone());
    }
    Value::Object(out)
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            if let Value::Object(next) = map.entry(first.clone()).or_insert_with(|| Value::Object(Map::new())) {
                insert_path(next, rest, value);
            }
        }
    }
}

fn split_field(field: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            '.' => parts.push(String::new()),
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

pub async fn sync(cx: Ctx) -> Result<Reply> {
    let since = cx.req.query("since").map(parse_sync_token).transpose()?;
    let full_state = parse_bool("full_state", cx.req.query("full_state"))?.unwrap_or(false);
    let timeout_ms = parse_limit(cx.req.query("timeout"), 0, u64::MAX >> 11)?;
    let set_presence = cx.req.query("set_presence");
    if let Some(state) = set_presence {
        super::presence::valid_state(state)?;
    }
    let requester = cx.requester()?;
    crate::auth_blocking::check_requester(&cx.db, &cx.config, requester).await?;
    crate::server_notices::on_sync(&cx, requester).await?;
    let (user, device) = (requester.user_id.to_string(), requester.device_id.clone());
    let filter = async {
        match cx.req.query("filter") {
            Some(raw) => filter::load(&cx, raw).await,
            None => Ok(Filter::default()),
        }
    };
    let (filter, affects_presence) =
        futures::try_join!(filter, super::presence::on_sync(&cx, &user, &device, set_presence))?;
    let options = options(filter, full_state);
    let response = sync_waiting(&cx, &user, since, &options, timeout_ms, affects_presence).await?;
    Reply::json(&response.into_json())
}

/// One pass over D1, and with nothing to report, past `since`, and a timeout, the wait in the
/// user's UserSync object for something to report. `affects_presence`: the wait keeps the user
/// online (the presence owner counted this request).
pub(super) async fn sync_waiting(
    cx: &Ctx,
    user: &str,
    since: Option<Positions>,
    options: &Options,
    timeout_ms: u64,
    affects_presence: bool,
) -> Result<SyncResponse> {
    let device = cx.requester()?.device_id.clone();
    let mut response = sync_once(cx, user, since, options).await?;
    if let (Some(since), true) = (since, timeout_ms > 0 && response.is_empty()) {
        let deadline = now_ms() + timeout_ms.min(user_sync::MAX_WAIT_MS);
        // A fresh UserSync object cannot tell what it missed: read again, then wait on it.
        for _ in 0..FRESH_RETRIES {
            let covered = response.next.max_with(&since);
            // Typing that runs out is a change too: wake when the first one does.
            let now = now_ms();
            let expiry = typing::next_expiry(&cx.db, &response.joined, now).await?;
            let until = expiry.map_or(deadline, |at| deadline.min(at + EXPIRY_SLACK_MS));
            let wait = until.saturating_sub(now);
            let waited = user_sync::wait(&cx.env, user, &device, covered, wait, affects_presence).await?;
            if waited == Waited::Superseded || (waited == Waited::TimedOut && until >= deadline) {
                break;
            }
            response = sync_once(cx, user, Some(since), options).await?;
            if !response.is_empty() || waited != Waited::Fresh {
                break;
            }
        }
    }
    Ok(response)
}

/// One pass over D1: everything between `since` and now. Rooms are read side by side.
pub(super) async fn sync_once(
    cx: &Ctx,
    user: &str,
    since: Option<Positions>,
    options: &Options,
) -> Result<SyncResponse> {
    let device = cx.requester()?.device_id.clone();
    // The heads first, then what they bound: anything read after them that is newer is left for
    // the next sync (memberships are filtered below), never missed.
    let (heads, expired_typing) = futures::try_join!(streams::heads(&cx.db), expire_typing(cx))?;
    let heads = Positions::from_array(heads);
    let upto = Positions {
        // Typing that ran out just now is a change at a position past the heads read with it.
        typing: expired_typing.unwrap_or(heads.typing),
        // To-device messages are read up to what the limit lets through: see `next` below.
        to_device: 0,
        ..heads
    };
    let to_device_head = heads.to_device;
    let from = since.unwrap_or_default();
    let after = since.map(|s| s.events);
    let device_messages = async {
        // An event stream carries no to-device messages, and acknowledges none.
        if options.stream_only {
            return Ok(Vec::new());
        }
        // A sync from a token past a to-device message shows that the device received it.
        if from.to_device > 0 {
            cx.db.run(to_device::delete_upto(&cx.db, user, &device, from.to_device)?).await?;
        }
        if to_device_head <= from.to_device {
            return Ok(Vec::new());
        }
        to_device::pending(&cx.db, user, &device, from.to_device, MAX_TO_DEVICE, MAX_TO_DEVICE_BYTES).await
    };
    let account_data = async {
        if upto.account_data <= from.account_data {
            return Ok(Vec::new());
        }
        account_data::changed_since(&cx.db, user, from.account_data, upto.account_data).await
    };
    let device_lists = async {
        match since {
            Some(since) => device_lists::between(&cx.db, user, &since, &upto).await,
            None => Ok(DeviceLists::default()),
        }
    };
    let (memberships, account_data, to_device, ignored, presence_changes, device_lists, keys) = futures::try_join!(
        current_state::memberships_of_user(&cx.db, user),
        account_data,
        device_messages,
        ignored_users(cx, user),
        super::presence::for_sync(cx, user, from.presence, upto.presence),
        device_lists,
        // The device's own keys: beside the rest, so that a woken sync waits for no extra query.
        e2e_one_time_keys::counts_and_fallbacks(&cx.db, user, &device),
    )?;
    let now = now_ms();
    let filter = &options.filter.presence;
    let mut presence: Vec<Value> = presence_changes
        .iter()
        .filter(|row| !ignored.contains(&row.user_id))
        .filter(|row| filter.matches("m.presence", <&ruma_common::UserId>::try_from(row.user_id.as_str()).ok()))
        .map(|row| presence_event(row, now))
        .collect();
    if let Some(limit) = filter.limit {
        // The newest changes: presence is a state, and older ones are superseded.
        presence.drain(..presence.len().saturating_sub(limit.get() as usize));
    }
    // Committed after this sync's snapshot: the next sync reports those.
    let memberships: Vec<_> = memberships.into_iter().filter(|m| m.position() <= upto.events).collect();
    let joined: Vec<String> =
        memberships.iter().filter(|m| m.membership == "join").map(|m| m.room_id.clone()).collect();
    let mut room_account_data: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut global_account_data = Vec::new();
    // An initial sync carries the push rules even when the user never changed one, as Synapse's.
    let mut push_rules_due = since.is_none();
    for row in account_data {
        let content = if row.room_id.is_empty() && row.kind == rules::ACCOUNT_DATA_TYPE {
            push_rules_due = false;
            push_rules_content(cx, Some(&row.content))?
        } else {
            serde_json::from_str(&row.content).unwrap_or_else(|_| json!({}))
        };
        let event = json!({"type": row.kind, "content": content});
        if row.room_id.is_empty() {
            if options.filter.account_data.matches(&row.kind, None) {
                global_account_data.push(event);
            }
        } else {
            room_account_data.entry(row.room_id).or_default().push(event);
        }
    }
    if push_rules_due && options.filter.account_data.matches(rules::ACCOUNT_DATA_TYPE, None) {
        let content = push_rules_content(cx, None)?;
        global_account_data.push(json!({"type": rules::ACCOUNT_DATA_TYPE, "content": content}));
    }
    // Receipts and typing of the joined rooms, and (incrementally) which joined rooms changed at
    // all: each found in one query over all the rooms, and skipped when its stream is still.
    let typing_moved = since.is_none() || upto.typing > from.typing;
    let typing_now = async {
        if !typing_moved {
            return Ok(BTreeMap::new());
        }
        typing::in_rooms(&cx.db, &joined, now_ms()).await
    };
    let rooms_with_events = async {
        match after {
            Some(a) if !options.full_state => events::rooms_with_events_between(&cx.db, &joined, a, upto.events).await,
            _ => Ok(Vec::new()),
        }
    };
    let rooms_with_notifications = async {
        match since {
            Some(s) if !options.full_state && upto.notifications > s.notifications => {
                event_push_actions::rooms_changed(&cx.db, user, s.notifications, upto.notifications).await
            }
            _ => Ok(Vec::new()),
        }
    };
    let (receipt_edus, typing_changed, typing_now, rooms_with_events, rooms_with_notifications) = futures::try_join!(
        receipts::since(&cx.db, &joined, user, from.receipts, upto.receipts),
        typing::changed_since(&cx.db, &joined, from.typing, upto.typing),
        typing_now,
        rooms_with_events,
        rooms_with_notifications,
    )?;
    let mut ephemeral: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (room, content) in receipt_edus {
        ephemeral.entry(room).or_default().push(json!({"type": "m.receipt", "content": content}));
    }
    let typing_rooms: Vec<&String> = match since {
        Some(_) => typing_changed.iter().collect(),
        None => typing_now.keys().collect(),
    };
    for room in typing_rooms {
        let users = typing_now.get(room).cloned().unwrap_or_default();
        let users: Vec<String> = users.into_iter().filter(|u| !ignored.contains(u)).collect();
        ephemeral.entry(room.clone()).or_default().push(json!({"type": "m.typing", "content": {"user_ids": users}}));
    }
    let active: Option<Vec<String>> = match after {
        Some(_) if !options.full_state => {
            let mut active = rooms_with_events;
            // Notifications recorded after the events that made them: their counts changed.
            active.extend(rooms_with_notifications.into_iter().filter(|r| joined.contains(r)));
            active.extend(room_account_data.keys().filter(|r| joined.contains(r)).cloned());
            active.extend(ephemeral.keys().cloned());
            Some(active)
        }
        _ => None,
    };
    let ephemeral = &ephemeral;
    let ignored = &ignored;
    let room_account_data = &room_account_data;
    let mut work: Vec<RoomWork<'_>> = Vec::new();
    // The joined rooms this sync serves, whose unread counts are read beside them.
    let mut served_joined = Vec::new();
    for membership in &memberships {
        let changed = after.is_none_or(|a| membership.position() > a);
        let room_id = parse_room_id(&membership.room_id)?;
        if !options.includes_room(&room_id) {
            continue;
        }
        let name = membership.room_id.clone();
        match membership.membership.as_str() {
            "join" if changed || active.as_ref().is_none_or(|a| a.contains(&name)) => {
                served_joined.push(name.clone());
                work.push(Box::pin(async move {
                    // A join after a join (a new display name, say) is no new join: no full state again.
                    let newly_joined = match after {
                        None => true,
                        Some(_) if !changed => false,
                        Some(a) => {
                            events::membership_at(&cx.db, room_id.as_str(), user, a).await?.as_deref() != Some("join")
                        }
                    };
                    let mut room =
                        joined_room(cx, &room_id, after, upto.events, newly_joined, options, ignored).await?;
                    room["account_data"]["events"] = room_data(options, &room_id, room_account_data.get(&name));
                    let filter = &options.filter.room.ephemeral;
                    let edus: Vec<Value> = ephemeral
                        .get(&name)
                        .into_iter()
                        .flatten()
                        .filter(|e| filter.matches(&room_id, e["type"].as_str().unwrap_or_default(), None, false))
                        .cloned()
                        .collect();
                    room["ephemeral"]["events"] = Value::Array(edus);
                    Ok(Some((Section::Join, name, room)))
                }));
            }
            "invite" if changed && ignored.contains(&membership.sender) => {}
            "invite" | "knock" if changed => {
                let section = if membership.membership == "invite" { Section::Invite } else { Section::Knock };
                work.push(Box::pin(async move {
                    let stripped = stripped_state(cx, &room_id, user).await?;
                    let key = if section == Section::Invite { "invite_state" } else { "knock_state" };
                    Ok(Some((section, name, json!({ key: {"events": stripped} }))))
                }));
            }
            // `include_leave` brings back every left room on a full sync only; an incremental
            // one carries the newly left ones, as Synapse's.
            "leave" | "ban"
                if !membership.is_forgotten()
                    && ((changed && since.is_some())
                        || (options.filter.room.include_leave && (since.is_none() || options.full_state))) =>
            {
                let left_at = membership.position();
                work.push(Box::pin(async move {
                    let mut room = left_room(cx, &room_id, after, left_at, options).await?;
                    room["account_data"]["events"] = room_data(options, &room_id, room_account_data.get(&name));
                    Ok(Some((Section::Leave, name, room)))
                }));
            }
            _ => {}
        }
    }
    let (served, mut counts) = futures::try_join!(
        try_join_all(work),
        event_push_actions::unread_counts(&cx.db, user, &served_joined, upto.events),
    )?;
    let per_thread = options.filter.room.timeline.unread_thread_notifications;
    let mut rooms = Rooms::default();
    for (section, room_id, mut room) in served.into_iter().flatten() {
        if section == Section::Join {
            set_unread_counts(&mut room, counts.remove(&room_id).unwrap_or_default(), per_thread);
        }
        let map = match section {
            Section::Join => &mut rooms.join,
            Section::Invite => &mut rooms.invite,
            Section::Leave => &mut rooms.leave,
            Section::Knock => &mut rooms.knock,
        };
        map.insert(room_id, room);
    }
    let delivered = to_device.last().map(|m| m.stream_id);
    let to_device = to_device
        .into_iter()
        .map(|m| {
            let content: Value = serde_json::from_str(&m.content).unwrap_or_else(|_| json!({}));
            json!({"sender": m.sender, "type": m.kind, "content": content})
        })
        .collect();
    let next = Positions {
        // Only as far as delivered: what the limit held back comes in the next sync.
        to_device: delivered.unwrap_or(since.map_or(0, |s| s.to_device)),
        ..upto.max_with(&since.unwrap_or_default())
    };
    Ok(SyncResponse { next, rooms, account_data: global_account_data, presence, to_device, device_lists, keys, joined })
}

/// The user's push rules as `m.push_rules` content: the stored ones (`None`: none) brought up to
/// date with the server's default rules.
pub(super) fn push_rules_content(cx: &Ctx, stored: Option<&str>) -> Result<Value> {
    let ruleset = rules::from_content(&cx.requester()?.user_id, stored);
    Ok(Value::Object(rules::content(&ruleset)?))
}

/// Marks typing that ran out as stopped, a change at a new position of which the rooms' members
/// are told; returns the typing stream's head after it, if there was any.
pub(super) async fn expire_typing(cx: &Ctx) -> Result<Option<u64>> {
    let now = now_ms();
    let expired = typing::expired_rooms(&cx.db, now).await?;
    if expired.is_empty() {
        return Ok(None);
    }
    cx.db.run(typing::expire(&cx.db, now)?).await?;
    let head = typing::max_stream_id(&cx.db).await?;
    let positions = Positions { typing: head, ..Positions::default() };
    try_join_all(expired.iter().map(|room| user_sync::notify_room(&cx.env, &cx.db, room, positions))).await?;
    Ok(Some(head))
}

/// The room's account data that the filter lets through.
fn room_data(options: &Options, room_id: &RoomId, events: Option<&Vec<Value>>) -> Value {
    let filter = &options.filter.room.account_data;
    let kept: Vec<Value> = events
        .into_iter()
        .flatten()
        .filter(|e| filter.matches(room_id, e["type"].as_str().unwrap_or_default(), None, false))
        .cloned()
        .collect();
    Value::Array(kept)
}

/// The users in the requester's `m.ignored_user_list`.
async fn ignored_users(cx: &Ctx, user: &str) -> Result<Vec<String>> {
    let Some(entry) = account_data::get(&cx.db, user, "", "m.ignored_user_list").await? else { return Ok(Vec::new()) };
    let content: Value = serde_json::from_str(&entry.content).unwrap_or_default();
    Ok(content.get("ignored_users").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default())
}

/// The reading of one room: its section, ID and JSON.
type RoomWork<'a> = LocalBoxFuture<'a, Result<Option<(Section, String, Value)>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Join,
    Invite,
    Leave,
    Knock,
}

#[derive(Default)]
pub(super) struct Rooms {
    pub join: BTreeMap<String, Value>,
    pub invite: BTreeMap<String, Value>,
    pub leave: BTreeMap<String, Value>,
    pub knock: BTreeMap<String, Value>,
}

pub(super) struct SyncResponse {
    pub next: Positions,
    pub rooms: Rooms,
    pub account_data: Vec<Value>,
    pub presence: Vec<Value>,
    to_device: Vec<Value>,
    device_lists: DeviceLists,
    keys: KeyCounts,
    /// The rooms the user is joined to.
    joined: Vec<String>,
}

impl SyncResponse {
    fn is_empty(&self) -> bool {
        self.rooms.join.is_empty()
            && self.rooms.invite.is_empty()
            && self.rooms.leave.is_empty()
            && self.rooms.knock.is_empty()
            && self.account_data.is_empty()
            && self.presence.is_empty()
            && self.to_device.is_empty()
            && self.device_lists.is_empty()
    }

    fn into_json(mut self) -> Value {
        self.keys.one_time.entry(SIGNED_CURVE25519.to_owned()).or_insert(0);
        json!({
            "next_batch": sync_token(&self.next),
            "rooms": {
                "join": self.rooms.join,
                "invite": self.rooms.invite,
                "leave": self.rooms.leave,
                "knock": self.rooms.knock,
            },
            "account_data": {"events": self.account_data},
            "presence": {"events": self.presence},
            "to_device": {"events": self.to_device},
            "device_lists": {"changed": self.device_lists.changed, "left": self.device_lists.left},
            "device_one_time_keys_count": self.keys.one_time,
            "device_unused_fallback_key_types": self.keys.unused_fallback,
        })
    }
}

/// The timeline of a room between `after` and `upto` that the user may see, oldest first, and
/// whether events were left out.
struct Timeline {
    events: Vec<StoredEvent>,
    limited: bool,
    /// The token position just before the first event.
    prev_batch: u64,
}

async fn timeline(cx: &Ctx, view: &RoomView, after: Option<u64>, upto: u64, options: &Options) -> Result<Timeline> {
    let page = view.page(cx, Direction::Backward, Some(upto), after, &options.timeline, options.timeline_limit).await?;
    let mut events = page.events;
    events.reverse();
    let prev_batch = events.first().map_or(upto, |e| e.position().saturating_sub(1));
    Ok(Timeline { events, limited: page.next.is_some(), prev_batch })
}

async fn joined_room(
    cx: &Ctx,
    room_id: &RoomId,
    after: Option<u64>,
    upto: u64,
    newly_joined: bool,
    options: &Options,
    ignored: &[String],
) -> Result<Value> {
    let view = RoomView::open(cx, room_id).await?;
    // A newly joined room shows its recent history, not only what came after `since` (except to
    // an event stream).
    let newly_joined = newly_joined && !options.stream_only;
    let from = if newly_joined { None } else { after };
    let mut timeline = timeline(cx, &view, from, upto, options).await?;
    // Ignored users' messages are hidden; their state changes still count.
    timeline.events.retain(|e| e.state_key.is_some() || !ignored.contains(&e.sender));
    let full = newly_joined || options.full_state;
    let mut state = if full {
        events::state_at(&cx.db, room_id.as_str(), timeline.prev_batch).await?
    } else if timeline.limited {
        // What changed in the gap between `since` and the timeline.
        let since = after.unwrap_or(0);
        let mut gap = events::state_at(&cx.db, room_id.as_str(), timeline.prev_batch).await?;
        gap.retain(|e| e.position() > since);
        gap
    } else {
        Vec::new()
    };
    let limited = timeline.limited || (newly_joined && after.is_some());
    let reader = reader(cx)?;
    let members_changed = newly_joined || state.iter().chain(&timeline.events).any(|e| e.kind == "m.room.member");
    let lazy = options.filter.room.state.lazy_load_members;
    if lazy && !full {
        add_senders_members(cx, room_id, &timeline, &mut state).await?;
    }
    let gap_since = after.filter(|_| !full && timeline.limited);
    options.retain_state(room_id, &mut state, &timeline, reader.user_id, gap_since);
    if lazy {
        // Redundant: what the device holds since a response at or before `since`.
        let since = after.filter(|_| !full && !options.filter.room.state.include_redundant_members);
        leave_out_sent_members(&reader, room_id, since, &timeline, &mut state, upto);
    }
    let (timeline_json, state) = render(cx, &view, options, &timeline, &state, limited).await?;
    let mut room = Map::new();
    if members_changed {
        room.insert("summary".into(), summary(cx, room_id.as_str(), reader.user_id).await?);
    }
    room.insert("timeline".into(), timeline_json);
    room.insert("state".into(), json!({ "events": state }));
    room.insert("ephemeral".into(), json!({"events": []}));
    room.insert("account_data".into(), json!({"events": []}));
    Ok(Value::Object(room))
}

/// A joined room's `unread_notifications` and, when the filter asks for them,
/// `unread_thread_notifications`: then the room's own counts are its main timeline's only.
fn set_unread_counts(room: &mut Value, threads: BTreeMap<String, Counts>, per_thread: bool) {
    let json = |c: &Counts| json!({"highlight_count": c.highlights, "notification_count": c.notifications});
    let room_counts = match per_thread {
        true => threads.get("main").copied().unwrap_or_default(),
        false => threads.values().fold(Counts::default(), |sum, c| Counts {
            notifications: sum.notifications + c.notifications,
            highlights: sum.highlights + c.highlights,
        }),
    };
    room["unread_notifications"] = json(&room_counts);
    if per_thread {
        let by_thread: Map<String, Value> =
            threads.iter().filter(|(thread, _)| *thread != "main").map(|(t, c)| (t.clone(), json(c))).collect();
        room["unread_thread_notifications"] = Value::Object(by_thread);
    }
}

/// With lazy loading, the timeline's senders come with their members, changed or not: the device
/// may never have been sent them.
async fn add_senders_members(
    cx: &Ctx,
    room_id: &RoomId,
    timeline: &Timeline,
    state: &mut Vec<StoredEvent>,
) -> Result<()> {
    let mut missing: Vec<String> = timeline.events.iter().map(|e| e.sender.clone()).collect();
    missing.sort();
    missing.dedup();
    missing.retain(|m| !state.iter().any(|e| e.kind == "m.room.member" && e.state_key.as_deref() == Some(m)));
    state.extend(events::members_at(&cx.db, room_id.as_str(), &missing, timeline.prev_batch).await?);
    state.sort_by_key(StoredEvent::position);
    Ok(())
}

/// Leaves out of `state` the member events that the device holds since a response at or before
/// `since` (none without one), and notes the ones this response at `upto` sends.
fn leave_out_sent_members(
    reader: &Reader<'_>,
    room_id: &RoomId,
    since: Option<u64>,
    timeline: &Timeline,
    state: &mut Vec<StoredEvent>,
    upto: u64,
) {
    let (user, device, room) = (reader.user_id, reader.device_id.unwrap_or_default(), room_id.as_str());
    sent_members::with(|sent| {
        if let Some(since) = since {
            state.retain(|e| {
                let member = e.state_key.as_deref().unwrap_or_default();
                e.kind != "m.room.member" || !sent.holds(user, device, room, member, &e.event_id, since)
            });
        }
        let members = state.iter().chain(&timeline.events).filter(|e| e.kind == "m.room.member");
        let sent_now = members.map(|e| (e.state_key.as_deref().unwrap_or_default(), e.event_id.as_str()));
        sent.record(user, device, room, sent_now, upto);
    });
}

async fn left_room(cx: &Ctx, room_id: &RoomId, after: Option<u64>, left_at: u64, options: &Options) -> Result<Value> {
    let view = RoomView::open(cx, room_id).await?;
    let timeline = timeline(cx, &view, after, left_at, options).await?;
    // Incrementally, only what changed in the gap before the timeline, as for a joined room;
    // a room joined and left since `since` was never shown, so its state comes whole.
    let user = reader(cx)?.user_id;
    let was_joined = match after {
        Some(a) => events::membership_at(&cx.db, room_id.as_str(), user, a).await?.as_deref() == Some("join"),
        None => false,
    };
    let since = after.filter(|_| !options.full_state && was_joined);
    let mut state = match (since, timeline.limited) {
        (Some(_), false) => Vec::new(),
        _ => events::state_at(&cx.db, room_id.as_str(), timeline.prev_batch).await?,
    };
    if let Some(since) = since {
        state.retain(|e| e.position() > since);
    }
    options.retain_state(room_id, &mut state, &timeline, reader(cx)?.user_id, since);
    let (timeline_json, state) = render(cx, &view, options, &timeline, &state, timeline.limited).await?;
    Ok(json!({
        "timeline": timeline_json,
        "state": {"events": state},
        "account_data": {"events": []},
    }))
}

/// A room's timeline section and its state events, in the client format and narrowed to the
/// filter's `event_fields`. A limited timeline's events carry their aggregations, as the spec
/// asks: an unlimited one holds the edits and replies that came after them anyway.
async fn render(
    cx: &Ctx,
    view: &RoomView,
    options: &Options,
    timeline: &Timeline,
    state: &[StoredEvent],
    limited: bool,
) -> Result<(Value, Vec<Value>)> {
    let reader = reader(cx)?;
    let now = now_ms();
    let serve = |e: &StoredEvent| options.fields(client_event(e, &view.version, reader, now));
    let events: Vec<Value> = match limited {
        true => serve_bundled(cx, view, &timeline.events).await?.into_iter().map(|e| options.fields(e)).collect(),
        false => timeline.events.iter().map(serve).collect(),
    };
    let timeline = json!({
        "events": events,
        "limited": limited,
        "prev_batch": super::room_access::stream_token(timeline.prev_batch),
    });
    Ok((timeline, state.iter().map(serve).collect()))
}

/// `m.heroes` and the member counts.
async fn summary(cx: &Ctx, room_id: &str, user: &str) -> Result<Value> {
    let members = current_state::members(&cx.db, room_id).await?;
    let count = |m: &str| members.iter().filter(|(_, membership)| membership == m).count();
    let heroes: Vec<&String> = members
        .iter()
        .filter(|(id, m)| id != user && (m == "join" || m == "invite"))
        .map(|(id, _)| id)
        .take(HEROES)
        .collect();
    Ok(json!({
        "m.heroes": heroes,
        "m.joined_member_count": count("join"),
        "m.invited_member_count": count("invite"),
    }))
}

/// What an invitee or knocker sees of a room: stripped state, and its own membership event, as
/// redactions left them.
async fn stripped_state(cx: &Ctx, room_id: &RoomId, user: &str) -> Result<Vec<Value>> {
    let (state, version) =
        futures::try_join!(current_state::room_state(&cx.db, room_id.as_str()), room_version(cx, room_id))?;
    let mut out = Vec::new();
    for e in &state {
        let wanted = STRIPPED_STATE_TYPES.contains(&e.kind.as_str())
            || (e.kind == "m.room.member" && e.state_key.as_deref() == Some(user));
        if !wanted {
            continue;
        }
        let event = client_event(e, &version, reader(cx)?, 0);
        let mut stripped = Map::new();
        for field in ["content", "sender", "state_key", "type"] {
            if let Some(v) = event.get(field) {
                stripped.insert(field.into(), v.clone());
            }
        }
        out.push(Value::Object(stripped));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let p = Positions {
            events: 42,
            account_data: 7,
            to_device: 3,
            receipts: 2,
            typing: 1,
            presence: 9,
            notifications: 5,
            device_lists: 4,
        };
        assert_eq!(parse_sync_token(&sync_token(&p)).unwrap(), p);
        assert_eq!(parse_sync_token("s42").unwrap(), Positions { events: 42, ..Positions::default() });
        for bad in ["", "s", "42", "s1_2_3_4_5_6_7_8_9", "s-1", "sx", "s1__2", "s99999999999999999999", "t1"] {
            assert!(parse_sync_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_fields_keep_only_the_named_paths() {
        let event = json!({"type": "m.room.message", "sender": "@a:hs", "content": {"body": "hi", "msgtype": "m.text",
            "m.relates_to": {"rel_type": "m.thread"}}, "unsigned": {"age": 5}, "we.ird": 1});
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            only_fields(event.clone(), &fields(&["type", "content.body", "unsigned.age"])),
            json!({"type": "m.room.message", "content": {"body": "hi"}, "unsigned": {"age": 5}})
        );
        assert_eq!(
            only_fields(event.clone(), &fields(&["content.m\\.relates_to.rel_type", "we\\.ird"])),
            json!({"content": {"m.relates_to": {"rel_type": "m.thread"}}, "we.ird": 1})
        );
        assert_eq!(only_fields(event, &fields(&["content.nothing", "missing"])), json!({}));
    }
}
