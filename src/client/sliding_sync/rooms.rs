//! The rooms of a sliding sync response: for every room a list window or subscription holds,
//! what changed since the connection last sent it (everything, the first time). Each kind of
//! read covers all the rooms in one query, whatever their number.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::user_sync::Positions;
use crate::error::Result;
use crate::room::client_format::{client_event, Reader};
use crate::room::versions::RoomVersion;
use crate::room::visibility::Range;
use crate::storage::current_state::{self, StateWanted, Summary};
use crate::storage::event_push_actions;
use crate::storage::events::{self, StoredEvent, TimelineWindow};
use crate::storage::receipts;
use crate::time::now_ms;

use super::super::relations::{serve_bundled_rooms, Served};
use super::super::room_access::{stream_token, timeline_from_rows};
use super::super::rooms::reader;
use super::super::sync::STRIPPED_STATE_TYPES;
use super::connection::{ConnState, SentRoom};
use super::lists::Candidate;
use super::request::RoomConfig;

/// Timeline queries one pass may make: rooms with other limits share the next larger one.
const MAX_TIMELINE_QUERIES: usize = 3;

/// One room to answer for.
pub struct Wanted<'a> {
    pub room: &'a Candidate,
    pub config: &'a RoomConfig,
    pub version: RoomVersion,
}

/// What the rooms part of a pass found.
pub struct Rooms {
    /// The rooms with something to say, by ID.
    pub rooms: Map<String, Value>,
    /// What the connection now holds of each room answered for.
    pub sent: BTreeMap<String, SentRoom>,
    /// The joined rooms answered for the first time on this connection.
    pub initial_joined: Vec<String>,
    /// Receipts written since the previous response in the joined rooms that were sent before,
    /// by room (`m.receipt` content).
    pub receipts_since: BTreeMap<String, Value>,
}

/// Where the room's reading starts: after this position, or (`None`) from scratch.
fn sent_at<'a>(previous: Option<&'a ConnState>, room: &Candidate) -> Option<&'a SentRoom> {
    previous?.rooms.get(&room.room_id).filter(|sent| sent.membership == room.membership)
}

/// The position up to which the user may read the room: now, or when they stopped being in it.
fn head(room: &Candidate, upto: u64) -> u64 {
    match room.membership.as_str() {
        "join" => upto,
        _ => room.membership_at.min(upto),
    }
}

/// Whether the room's timeline limit grew past what the client has: its newest events are sent
/// again, as many as the new limit (Synapse's `unstable_expanded_timeline`).
fn expands(sent: Option<&SentRoom>, config: &RoomConfig) -> bool {
    sent.is_some_and(|s| s.timeline_limit < config.timeline_limit)
}

/// Where a room's timeline read starts: after what the connection holds of it, unless it expands.
fn timeline_after(sent: Option<&SentRoom>, config: &RoomConfig) -> u64 {
    match expands(sent, config) {
        true => 0,
        false => sent.map_or(0, |s| s.at),
    }
}

fn has_timeline(room: &Candidate) -> bool {
    matches!(room.membership.as_str(), "join" | "leave" | "ban")
}

pub async fn build(
    cx: &Ctx,
    user: &str,
    wanted: &[Wanted<'_>],
    previous: Option<&ConnState>,
    from: Option<&Positions>,
    upto: &Positions,
    ignored: &[String],
) -> Result<Rooms> {
    let with_timeline: Vec<&Wanted> = wanted.iter().filter(|w| has_timeline(w.room)).collect();
    let timeline_ids: Vec<String> = with_timeline.iter().map(|w| w.room.room_id.clone()).collect();
    let joined: Vec<String> =
        wanted.iter().filter(|w| w.room.membership == "join").map(|w| w.room.room_id.clone()).collect();
    let live_joined: Vec<String> = wanted
        .iter()
        .filter(|w| w.room.membership == "join" && sent_at(previous, w.room).is_some())
        .map(|w| w.room.room_id.clone())
        .collect();
    let from_receipts = from.map_or(0, |f| f.receipts);
    let from_notifications = from.map_or(0, |f| f.notifications);
    // The positions each room's reader may see, then its timeline (in a query per limit), then the
    // required state that the timeline's senders decide (with the name, the avatar, and an
    // invite's stripped state), in one query: a chain beside the other reads.
    let chain = async {
        let mut visibility = events::visibility_timelines(&cx.db, &timeline_ids, user).await?;
        let (mut visible, mut joined_at) = (BTreeMap::new(), BTreeMap::new());
        for w in &with_timeline {
            let mut rows = visibility.remove(&w.room.room_id).unwrap_or_default();
            rows.push(events::TimelineRow {
                stream_ordering: head(w.room, upto.events) as f64,
                kind: "head".into(),
                membership: None,
                visibility: None,
                forgotten: None,
            });
            let (timeline, _) = timeline_from_rows(rows);
            visible.insert(w.room.room_id.clone(), timeline.visible_ranges());
            joined_at.insert(w.room.room_id.clone(), timeline.joined_ranges());
        }
        let timelines = timelines(cx, &with_timeline, previous, upto.events, &visible).await?;
        let (lookups, departed) = state_lookups(wanted, previous, user, &timelines);
        let departed_at: BTreeMap<String, u64> = wanted
            .iter()
            .filter(|w| w.room.membership != "join")
            .map(|w| (w.room.room_id.clone(), head(w.room, upto.events)))
            .collect();
        // A limited timeline's events carry their aggregations, as `/sync`'s: the client lacks
        // the children that would let it aggregate them itself.
        let limited: Vec<Served> = with_timeline
            .iter()
            .filter_map(|w| {
                let id = w.room.room_id.as_str();
                let timeline = timelines.get(id).filter(|t| t.limited)?;
                let events = timeline.events.iter().filter(|e| shown(e, ignored)).collect();
                let visible = visible.get(id).map_or(&[][..], Vec::as_slice);
                let joined = joined_at.get(id).map(Vec::as_slice);
                Some(Served {
                    room_id: id,
                    version: &w.version,
                    head: head(w.room, upto.events),
                    visible,
                    joined,
                    events,
                })
            })
            .collect();
        let (mut state_rows, departed_rows, bundled) = futures::try_join!(
            current_state::state_matching(&cx.db, &lookups),
            current_state::state_matching_at(&cx.db, &departed, &departed_at),
            serve_bundled_rooms(cx, &limited)
        )?;
        state_rows.extend(departed_rows);
        let bundled: BTreeMap<String, Vec<Value>> = limited.iter().map(|r| r.room_id.to_owned()).zip(bundled).collect();
        Ok((timelines, state_rows, bundled, joined_at))
    };
    let ((timelines, state_rows, mut bundled, joined_at), summaries, counts, notified, receipts_since) = futures::try_join!(
        chain,
        // Counts and heroes are the current ones: a room the user left gets none, as in Synapse.
        current_state::summaries(&cx.db, &joined, user),
        event_push_actions::unread_counts(&cx.db, user, &joined, upto.events),
        async {
            match from {
                Some(_) if upto.notifications > from_notifications => {
                    event_push_actions::rooms_changed(&cx.db, user, from_notifications, upto.notifications).await
                }
                _ => Ok(Vec::new()),
            }
        },
        receipts::since(&cx.db, &live_joined, user, from_receipts, upto.receipts),
    )?;
    let mut state_by_room: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for e in &state_rows {
        state_by_room.entry(e.room_id.as_str()).or_default().push(e);
    }
    let summaries: BTreeMap<&str, &Summary> = summaries.iter().map(|s| (s.room_id.as_str(), s)).collect();
    let reader = reader(cx)?;
    let now = now_ms();

    let mut out =
        Rooms { rooms: Map::new(), sent: BTreeMap::new(), initial_joined: Vec::new(), receipts_since: BTreeMap::new() };
    for w in wanted {
        let room = w.room;
        let id = room.room_id.as_str();
        let sent = sent_at(previous, room);
        let head = head(room, upto.events);
        // Where the reader was joined, for erased senders' events (rooms with a timeline).
        let reader = Reader { joined: joined_at.get(id).map(Vec::as_slice), ..reader };
        let serve = |e: &StoredEvent| client_event(e, &w.version, reader, now);
        let state: Vec<&StoredEvent> =
            state_by_room.get(id).into_iter().flatten().copied().filter(|e| e.position() <= head).collect();
        let mut json = Map::new();
        if sent.is_none() {
            json.insert("initial".into(), json!(true));
            if room.membership == "join" {
                out.initial_joined.push(id.to_owned());
            }
        }
        json.insert("is_dm".into(), json!(room.is_dm));
        if let Some(name) = content_string(&state, "m.room.name", "name") {
            json.insert("name".into(), json!(name));
        }
        if let Some(avatar) = content_string(&state, "m.room.avatar", "url") {
            json.insert("avatar".into(), json!(avatar));
        }
        let mut changed = false;
        // What the client will hold of the timeline: unchanged when the room is not sent or its
        // timeline leaves no gap.
        let mut timeline_limit = sent.map_or(w.config.timeline_limit, |s| s.timeline_limit);
        if !has_timeline(room) {
            if sent.is_none() {
                let stripped: Vec<Value> = state.iter().map(|e| stripped(serve(e))).collect();
                let key = if room.membership == "invite" { "invite_state" } else { "knock_state" };
                json.insert(key.into(), json!(stripped));
                json.insert("bump_stamp".into(), json!(room.bump));
                changed = true;
            }
        } else {
            let after = sent.map_or(0, |s| s.at);
            let timeline = timelines.get(id);
            let events: Vec<&StoredEvent> =
                timeline.into_iter().flat_map(|t| &t.events).filter(|e| shown(e, ignored)).collect();
            let senders = timeline.map(|t| t.senders()).unwrap_or_default();
            let state_after = sent.filter(|s| s.required_state == w.config.state_digest()).map_or(0, |s| s.at);
            let lazy = w.config.required_state.contains(&("m.room.member".to_owned(), "$LAZY".to_owned()));
            let required: Vec<Value> = state
                .iter()
                .filter(|e| {
                    let key = e.state_key.as_deref().unwrap_or_default();
                    let lazy_member = lazy && e.kind == "m.room.member" && senders.contains(&key);
                    w.config.wants(&e.kind, key, user, &senders) && (e.position() > state_after || lazy_member)
                })
                .map(|e| serve(e))
                .collect();
            let live_from = from.map_or(u64::MAX, |f| f.events);
            let num_live = if sent.is_some() { events.iter().filter(|e| e.position() > live_from).count() } else { 0 };
            let prev_batch = events.first().map_or(head, |e| e.position().saturating_sub(1));
            changed |= sent.is_none() || !events.is_empty() || !required.is_empty();
            changed |= json.contains_key("name") || json.contains_key("avatar");
            let served = bundled.remove(id).unwrap_or_else(|| events.iter().map(|e| serve(e)).collect());
            json.insert("timeline".into(), Value::Array(served));
            json.insert("required_state".into(), Value::Array(required));
            json.insert("prev_batch".into(), json!(stream_token(prev_batch)));
            let limited = timeline.is_some_and(|t| t.limited);
            if expands(sent, w.config) {
                json.insert("unstable_expanded_timeline".into(), json!(true));
                changed = true;
            }
            if expands(sent, w.config) || (limited && !events.is_empty()) {
                timeline_limit = w.config.timeline_limit;
            }
            json.insert("limited".into(), json!(limited));
            json.insert("num_live".into(), json!(num_live));
            if sent.is_none() || room.bump > after {
                json.insert("bump_stamp".into(), json!(room.bump));
            }
            if let Some(summary) = summaries.get(id) {
                let members_changed = summary.members_changed.unwrap_or(0.0) as u64;
                if sent.is_none() || members_changed > after {
                    json.insert("joined_count".into(), json!(summary.joined as u64));
                    json.insert("invited_count".into(), json!(summary.invited as u64));
                    if !has_name(&state) {
                        json.insert("heroes".into(), heroes(&summary.heroes));
                    }
                    changed = true;
                }
            }
            if room.membership == "join" {
                let threads = counts.get(id).cloned().unwrap_or_default();
                let notifications: u64 = threads.values().map(|c| c.notifications).sum();
                let highlights: u64 = threads.values().map(|c| c.highlights).sum();
                json.insert("notification_count".into(), json!(notifications));
                json.insert("highlight_count".into(), json!(highlights));
                let read = receipts_since.get(id).is_some_and(|content| has_receipt_of(content, user));
                changed |= read || notified.iter().any(|r| r == id);
            }
        }
        out.sent.insert(
            id.to_owned(),
            SentRoom {
                at: head,
                membership: room.membership.clone(),
                required_state: w.config.state_digest(),
                timeline_limit,
            },
        );
        if changed {
            out.rooms.insert(id.to_owned(), Value::Object(json));
        }
    }
    out.receipts_since = receipts_since;
    Ok(out)
}

/// Whether a timeline event is shown: not a message of an ignored user.
fn shown(e: &StoredEvent, ignored: &[String]) -> bool {
    e.state_key.is_some() || !ignored.contains(&e.sender)
}

/// The state lookups of the rooms: an invite's stripped state the first time; for the others
/// their name and avatar if they changed, and their `required_state`. The joined rooms' go to
/// the current state (the first), the others' to their state when the user's membership took
/// effect (the second): nothing after it is theirs to see.
fn state_lookups(
    wanted: &[Wanted<'_>],
    previous: Option<&ConnState>,
    user: &str,
    timelines: &BTreeMap<String, Timeline>,
) -> (StateWanted, StateWanted) {
    let (mut current, mut departed) = (StateWanted::default(), StateWanted::default());
    for w in wanted {
        let id = &w.room.room_id;
        let lookups = if w.room.membership == "join" { &mut current } else { &mut departed };
        let sent = sent_at(previous, w.room);
        if !has_timeline(w.room) {
            if sent.is_none() {
                for kind in STRIPPED_STATE_TYPES {
                    lookups.exact.push((id.clone(), (*kind).to_owned(), String::new(), 0));
                }
                lookups.exact.push((id.clone(), "m.room.member".into(), user.to_owned(), 0));
            }
            continue;
        }
        let after = sent.map_or(0, |s| s.at);
        let state_after = sent.filter(|s| s.required_state == w.config.state_digest()).map_or(0, |s| s.at);
        for kind in ["m.room.name", "m.room.avatar"] {
            lookups.exact.push((id.clone(), kind.into(), String::new(), after));
        }
        let senders = timelines.get(id).map(|t| t.senders()).unwrap_or_default();
        w.config.add_lookups(lookups, id, user, &senders, state_after);
    }
    (current, departed)
}

/// A room's timeline as read, oldest first, and whether older events were left out.
struct Timeline {
    events: Vec<StoredEvent>,
    limited: bool,
}

impl Timeline {
    fn senders(&self) -> Vec<&str> {
        let mut senders: Vec<&str> = self.events.iter().map(|e| e.sender.as_str()).collect();
        senders.sort_unstable();
        senders.dedup();
        senders
    }
}

/// Reads the timelines: each room's newest events after what the connection holds, one more than
/// its limit to tell whether it is limited, in a query per distinct limit (at most
/// [`MAX_TIMELINE_QUERIES`]: the smaller limits share the smallest query kept above them).
async fn timelines(
    cx: &Ctx,
    rooms: &[&Wanted<'_>],
    previous: Option<&ConnState>,
    upto: u64,
    visible: &BTreeMap<String, Vec<Range>>,
) -> Result<BTreeMap<String, Timeline>> {
    let mut limits: Vec<u64> = rooms.iter().map(|w| w.config.timeline_limit).filter(|l| *l > 0).collect();
    limits.sort_unstable();
    limits.dedup();
    let kept: Vec<u64> = limits.iter().rev().take(MAX_TIMELINE_QUERIES).rev().copied().collect();
    let query_limit = |limit: u64| kept.iter().copied().find(|k| *k >= limit).unwrap_or(limit);
    let mut groups: BTreeMap<u64, Vec<TimelineWindow<'_>>> = BTreeMap::new();
    for w in rooms.iter().filter(|w| w.config.timeline_limit > 0) {
        let ranges = visible.get(&w.room.room_id).map_or(&[][..], Vec::as_slice);
        let after = timeline_after(sent_at(previous, w.room), w.config);
        // Nothing the reader may see lies before their first visible position.
        let after = after.max(ranges.first().map_or(0, |r| r.first.saturating_sub(1)));
        let window = TimelineWindow { room_id: &w.room.room_id, after, upto: head(w.room, upto), visible: ranges };
        groups.entry(query_limit(w.config.timeline_limit)).or_default().push(window);
    }
    let reads = groups.iter().map(|(limit, windows)| events::timelines(&cx.db, windows, limit + 1));
    let results = futures::future::try_join_all(reads).await?;
    let mut by_room: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    for e in results.into_iter().flatten() {
        by_room.entry(e.room_id.clone()).or_default().push(e);
    }
    let mut out = BTreeMap::new();
    for w in rooms {
        let Some(mut events) = by_room.remove(&w.room.room_id) else { continue };
        events.sort_by_key(StoredEvent::position);
        let limit = usize::try_from(w.config.timeline_limit).unwrap_or(usize::MAX);
        let limited = events.len() > limit;
        events.drain(..events.len().saturating_sub(limit));
        out.insert(w.room.room_id.clone(), Timeline { events, limited });
    }
    Ok(out)
}

/// The string field `field` of the content of the state event of type `kind` (state key '').
fn content_string(state: &[&StoredEvent], kind: &str, field: &str) -> Option<String> {
    let e = state.iter().find(|e| e.kind == kind && e.state_key.as_deref() == Some(""))?;
    if e.redaction_id.is_some() {
        return None;
    }
    let pdu: Value = serde_json::from_str(&e.json).ok()?;
    pdu["content"][field].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn has_name(state: &[&StoredEvent]) -> bool {
    content_string(state, "m.room.name", "name").is_some()
}

/// Heroes as MSC4186 gives them, from [`Summary::heroes`].
fn heroes(raw: &str) -> Value {
    let rows: Vec<(String, Option<String>, Option<String>)> = serde_json::from_str(raw).unwrap_or_default();
    let heroes: Vec<Value> = rows
        .into_iter()
        .map(|(user_id, name, avatar)| {
            let mut hero = Map::new();
            hero.insert("user_id".into(), json!(user_id));
            if let Some(name) = name {
                hero.insert("displayname".into(), json!(name));
            }
            if let Some(avatar) = avatar {
                hero.insert("avatar_url".into(), json!(avatar));
            }
            Value::Object(hero)
        })
        .collect();
    Value::Array(heroes)
}

/// The stripped form of a served state event: what an invitee sees.
fn stripped(event: Value) -> Value {
    let mut out = Map::new();
    for field in ["content", "sender", "state_key", "type"] {
        if let Some(v) = event.get(field) {
            out.insert(field.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Whether an `m.receipt` content holds a receipt of `user`'s.
fn has_receipt_of(content: &Value, user: &str) -> bool {
    let by_event = content.as_object().into_iter().flat_map(|m| m.values());
    by_event
        .flat_map(|by_type| by_type.as_object().into_iter().flat_map(|m| m.values()))
        .any(|by_user| by_user.get(user).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heroes_and_receipts() {
        let raw = r#"[["@a:hs", "Alice", null], ["@b:hs", null, "mxc://hs/b"]]"#;
        assert_eq!(
            heroes(raw),
            json!([{"user_id": "@a:hs", "displayname": "Alice"}, {"user_id": "@b:hs", "avatar_url": "mxc://hs/b"}])
        );
        assert_eq!(heroes("[]"), json!([]));
        let content = json!({"$e": {"m.read": {"@a:hs": {"ts": 1}}}});
        assert!(has_receipt_of(&content, "@a:hs"));
        assert!(!has_receipt_of(&content, "@b:hs"));
    }

    #[test]
    fn stripped_state_keeps_four_fields() {
        let event = json!({"type": "m.room.name", "state_key": "", "sender": "@a:hs", "content": {"name": "x"},
            "event_id": "$e", "origin_server_ts": 1, "unsigned": {}});
        assert_eq!(
            stripped(event),
            json!({"type": "m.room.name", "state_key": "", "sender": "@a:hs", "content": {"name": "x"}})
        );
    }
}
