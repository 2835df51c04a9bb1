//! Syncing: `GET /sync`.
//!
//! A sync reads D1 from the positions of its `since` token up to the positions it takes at its
//! start, and hands those out as `next_batch`. With nothing to report and a `timeout`, it waits
//! in the user's [`UserSync`](crate::durable_objects::user_sync) object, which a commit that
//! concerns the user wakes with a position, and then reads D1 again.
//!
//! # Tokens
//!
//! `s<events>_<account data>_<to-device>`: one position per stream. The first part is also a
//! room-history token (see [`super::room_access`]), so `next_batch` works as a `from` of
//! `/messages`.

use std::collections::BTreeMap;

use ruma_common::RoomId;
use futures::future::{try_join_all, LocalBoxFuture};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::room::client_format::{client_event, Reader};
use crate::router::Ctx;
use crate::storage::events::{self, Direction, EventSelection, StoredEvent};
use crate::storage::current_state;
use crate::time::now_ms;

use super::room_access::{parse_bool, parse_limit, RoomView};
use super::rooms::parse_room_id;

/// The timeline length when the filter sets none, as Synapse.
const DEFAULT_TIMELINE_LIMIT: u64 = 10;
const MAX_TIMELINE_LIMIT: u64 = 1000;
/// The state of an invite or knock that the user sees before joining.
const STRIPPED_STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];
const HEROES: usize = 5;

/// A sync token: the positions a sync covered.
pub fn sync_token(p: &Positions) -> String {
    format!("s{}_{}_{}", p.events, p.account_data, p.to_device)
}

pub fn parse_sync_token(raw: &str) -> Result<Positions> {
    let bad = || invalid_param(format!("Unknown sync token {raw:?}"));
    let parts: Vec<&str> = raw.strip_prefix('s').ok_or_else(bad)?.split('_').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(bad());
    }
    let mut numbers = [0u64; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 16 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *slot = part.parse().map_err(|_| bad())?;
    }
    Ok(Positions { events: numbers[0], account_data: numbers[1], to_device: numbers[2] })
}

/// What of the sync filter this sync applies.
#[derive(Debug, Clone, Default)]
struct Options {
    timeline_limit: u64,
    timeline: EventSelection,
    include_leave: bool,
    full_state: bool,
}

#[derive(Debug, Default, Deserialize)]
struct TimelineFilter {
    limit: Option<u64>,
    types: Option<Vec<String>>,
    #[serde(default)]
    not_types: Vec<String>,
    senders: Option<Vec<String>>,
    #[serde(default)]
    not_senders: Vec<String>,
    contains_url: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RoomFilter {
    #[serde(default)]
    timeline: TimelineFilter,
    #[serde(default)]
    include_leave: bool,
}

#[derive(Debug, Default, Deserialize)]
struct SyncFilter {
    #[serde(default)]
    room: RoomFilter,
}

fn options(filter: SyncFilter, full_state: bool) -> Result<Options> {
    let timeline = filter.room.timeline;
    let limit = timeline.limit.unwrap_or(DEFAULT_TIMELINE_LIMIT).clamp(1, MAX_TIMELINE_LIMIT);
    Ok(Options {
        timeline_limit: limit,
        timeline: EventSelection {
            types: timeline.types,
            not_types: timeline.not_types,
            senders: timeline.senders,
            not_senders: timeline.not_senders,
            contains_url: timeline.contains_url,
            ..EventSelection::default()
        },
        include_leave: filter.room.include_leave,
        full_state,
    })
}

async fn load_filter(cx: &Ctx) -> Result<SyncFilter> {
    match cx.req.query("filter") {
        None => Ok(SyncFilter::default()),
        Some(raw) if raw.trim_start().starts_with('{') => serde_json::from_str(raw)
            .map_err(|e| crate::error::bad_json(format!("The filter is not a valid filter: {e}"))),
        Some(raw) => Err(invalid_param(format!("Unknown filter {raw:?}"))),
    }
}

pub async fn sync(cx: Ctx) -> Result<Reply> {
    let since = cx.req.query("since").map(parse_sync_token).transpose()?;
    let full_state = parse_bool("full_state", cx.req.query("full_state"))?.unwrap_or(false);
    let timeout_ms = parse_limit(cx.req.query("timeout"), 0, u64::MAX >> 11)?;
    if let Some(presence) = cx.req.query("set_presence") {
        if !matches!(presence, "online" | "offline" | "unavailable") {
            return Err(invalid_param("set_presence must be online, offline or unavailable"));
        }
    }
    let options = options(load_filter(&cx).await?, full_state)?;
    let user = cx.requester()?.user_id.to_string();

    let mut response = sync_once(&cx, &user, since, &options).await?;
    if let (Some(since), true) = (since, timeout_ms > 0 && response.is_empty()) {
        let covered = response.next.max_with(&since);
        if user_sync::wait(&cx.env, &user, covered, timeout_ms).await? {
            response = sync_once(&cx, &user, Some(since), &options).await?;
        }
    }
    Reply::json(&response.into_json())
}

/// One pass over D1: everything between `since` and now. Rooms are read side by side.
async fn sync_once(cx: &Ctx, user: &str, since: Option<Positions>, options: &Options) -> Result<SyncResponse> {
    let upto = Positions { events: events::max_stream_ordering(&cx.db).await?, ..Positions::default() };
    let after = since.map(|s| s.events);
    // Committed after this sync's snapshot: the next sync reports those.
    let memberships: Vec<_> = current_state::memberships_of_user(&cx.db, user)
        .await?
        .into_iter()
        .filter(|m| m.position() <= upto.events)
        .collect();
    // An incremental sync looks only at joined rooms with new events, found in one query.
    let active: Option<Vec<String>> = match after {
        Some(a) if !options.full_state => {
            let joined: Vec<String> =
                memberships.iter().filter(|m| m.membership == "join").map(|m| m.room_id.clone()).collect();
            Some(events::rooms_with_events_between(&cx.db, &joined, a, upto.events).await?)
        }
        _ => None,
    };
    let mut work: Vec<LocalBoxFuture<'_, Result<Option<(Section, String, Value)>>>> = Vec::new();
    for membership in &memberships {
        let changed = after.is_none_or(|a| membership.position() > a);
        let room_id = parse_room_id(&membership.room_id)?;
        let name = membership.room_id.clone();
        match membership.membership.as_str() {
            "join" if changed || active.as_ref().is_none_or(|a| a.contains(&name)) => {
                work.push(Box::pin(async move {
                    // A join after a join (a new display name, say) is no new join: no full state again.
                    let newly_joined = match after {
                        None => true,
                        Some(_) if !changed => false,
                        Some(a) => {
                            events::membership_at(&cx.db, room_id.as_str(), user, a).await?.as_deref() != Some("join")
                        }
                    };
                    let room = joined_room(cx, &room_id, after, upto.events, newly_joined, options).await?;
                    Ok(Some((Section::Join, name, room)))
                }));
            }
            "invite" | "knock" if changed => {
                let section = if membership.membership == "invite" { Section::Invite } else { Section::Knock };
                work.push(Box::pin(async move {
                    let stripped = stripped_state(cx, &room_id, user).await?;
                    let key = if section == Section::Invite { "invite_state" } else { "knock_state" };
                    Ok(Some((section, name, json!({ key: {"events": stripped} }))))
                }));
            }
            "leave" | "ban" if !membership.is_forgotten() && ((changed && since.is_some()) || options.include_leave) => {
                let left_at = membership.position();
                work.push(Box::pin(async move {
                    let room = left_room(cx, &room_id, after, left_at, options).await?;
                    Ok(Some((Section::Leave, name, room)))
                }));
            }
            _ => {}
        }
    }
    let mut rooms = Rooms::default();
    for (section, room_id, room) in try_join_all(work).await?.into_iter().flatten() {
        let map = match section {
            Section::Join => &mut rooms.join,
            Section::Invite => &mut rooms.invite,
            Section::Leave => &mut rooms.leave,
            Section::Knock => &mut rooms.knock,
        };
        map.insert(room_id, room);
    }
    let next = match since {
        Some(s) => Positions { events: upto.events.max(s.events), ..s },
        None => upto,
    };
    Ok(SyncResponse { next, rooms })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Join,
    Invite,
    Leave,
    Knock,
}

#[derive(Default)]
struct Rooms {
    join: BTreeMap<String, Value>,
    invite: BTreeMap<String, Value>,
    leave: BTreeMap<String, Value>,
    knock: BTreeMap<String, Value>,
}

struct SyncResponse {
    next: Positions,
    rooms: Rooms,
}

impl SyncResponse {
    fn is_empty(&self) -> bool {
        self.rooms.join.is_empty()
            && self.rooms.invite.is_empty()
            && self.rooms.leave.is_empty()
            && self.rooms.knock.is_empty()
    }

    fn into_json(self) -> Value {
        json!({
            "next_batch": sync_token(&self.next),
            "rooms": {
                "join": self.rooms.join,
                "invite": self.rooms.invite,
                "leave": self.rooms.leave,
                "knock": self.rooms.knock,
            },
            "account_data": {"events": []},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        })
    }
}

impl Positions {
    fn max_with(&self, other: &Positions) -> Positions {
        Positions {
            events: self.events.max(other.events),
            account_data: self.account_data.max(other.account_data),
            to_device: self.to_device.max(other.to_device),
        }
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

async fn timeline(
    cx: &Ctx,
    view: &RoomView,
    after: Option<u64>,
    upto: u64,
    options: &Options,
) -> Result<Timeline> {
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
) -> Result<Value> {
    let view = RoomView::open(cx, room_id).await?;
    // A newly joined room shows its recent history, not only what came after `since`.
    let from = if newly_joined { None } else { after };
    let timeline = timeline(cx, &view, from, upto, options).await?;
    let state = if newly_joined || options.full_state {
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
    let reader = reader_of(cx)?;
    let now = now_ms();
    let serve = |events: &[StoredEvent]| -> Vec<Value> {
        events.iter().map(|e| client_event(e, &view.version, reader, now)).collect()
    };
    let mut room = Map::new();
    let members_changed = newly_joined
        || state.iter().chain(&timeline.events).any(|e| e.kind == "m.room.member");
    if members_changed {
        room.insert("summary".into(), summary(cx, room_id.as_str(), reader.user_id).await?);
    }
    room.insert(
        "timeline".into(),
        json!({"events": serve(&timeline.events), "limited": limited,
               "prev_batch": super::room_access::stream_token(timeline.prev_batch)}),
    );
    room.insert("state".into(), json!({"events": serve(&state)}));
    room.insert("ephemeral".into(), json!({"events": []}));
    room.insert("account_data".into(), json!({"events": []}));
    room.insert("unread_notifications".into(), json!({"highlight_count": 0, "notification_count": 0}));
    room.insert("unread_thread_notifications".into(), json!({}));
    Ok(Value::Object(room))
}

async fn left_room(
    cx: &Ctx,
    room_id: &RoomId,
    after: Option<u64>,
    left_at: u64,
    options: &Options,
) -> Result<Value> {
    let view = RoomView::open(cx, room_id).await?;
    let timeline = timeline(cx, &view, after, left_at, options).await?;
    let state = events::state_at(&cx.db, room_id.as_str(), timeline.prev_batch).await?;
    let reader = reader_of(cx)?;
    let now = now_ms();
    let serve = |events: &[StoredEvent]| -> Vec<Value> {
        events.iter().map(|e| client_event(e, &view.version, reader, now)).collect()
    };
    Ok(json!({
        "timeline": {"events": serve(&timeline.events), "limited": timeline.limited,
                     "prev_batch": super::room_access::stream_token(timeline.prev_batch)},
        "state": {"events": serve(&state)},
        "account_data": {"events": []},
    }))
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

/// What an invitee or knocker sees of a room: stripped state, and its own membership event.
async fn stripped_state(cx: &Ctx, room_id: &RoomId, user: &str) -> Result<Vec<Value>> {
    let state = current_state::room_state(&cx.db, room_id.as_str()).await?;
    let mut out = Vec::new();
    for e in &state {
        let wanted = STRIPPED_STATE_TYPES.contains(&e.kind.as_str())
            || (e.kind == "m.room.member" && e.state_key.as_deref() == Some(user));
        if !wanted {
            continue;
        }
        let pdu: Map<String, Value> = serde_json::from_str(&e.json).unwrap_or_default();
        let mut stripped = Map::new();
        for field in ["content", "sender", "state_key", "type"] {
            if let Some(v) = pdu.get(field) {
                stripped.insert(field.into(), v.clone());
            }
        }
        out.push(Value::Object(stripped));
    }
    Ok(out)
}

fn reader_of(cx: &Ctx) -> Result<Reader<'_>> {
    super::rooms::reader(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let p = Positions { events: 42, account_data: 7, to_device: 3 };
        assert_eq!(parse_sync_token(&sync_token(&p)).unwrap(), p);
        assert_eq!(parse_sync_token("s42").unwrap(), Positions { events: 42, ..Positions::default() });
        for bad in ["", "s", "42", "s1_2_3_4", "s-1", "sx", "s1__2", "s99999999999999999999", "t1"] {
            assert!(parse_sync_token(bad).is_err(), "{bad}");
        }
    }
}
