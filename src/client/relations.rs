//! Relations and threads: `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` and
//! `GET /rooms/{roomId}/threads`, and the aggregations that events carry wherever they are served:
//! `m.thread` on thread roots, `m.replace` (the most recent valid edit) on edited events,
//! `m.reference` (the IDs of the references) on referenced events.
//!
//! A redacted event has lost its `m.relates_to`, so it is no longer a relation nor a thread reply.
//! Counts and latest replies only take in the replies the reader may see.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::room::client_format::{client_event, Reader};
use crate::room::versions::RoomVersion;
use crate::room::visibility::{in_ranges, Range};
use crate::storage::events::{self, Direction, EventSelection, Parent, StoredEvent, ThreadQuery, ThreadSummary};
use crate::time::now_ms;

use super::room_access::{dir_param, event_id_param, parse_bool, parse_limit, stream_token, token_param, RoomView};
use super::rooms::{reader, room_id_param};

/// Relations per page when the client does not say, as Synapse.
const DEFAULT_RELATIONS_LIMIT: u64 = 5;
const MAX_RELATIONS_LIMIT: u64 = 1000;
/// Thread roots per page when the client does not say, as Synapse.
const DEFAULT_THREADS_LIMIT: u64 = 5;
const MAX_THREADS_LIMIT: u64 = 100;
/// The event type and state key limit of the spec, in bytes.
const MAX_ID_BYTES: usize = 255;

pub async fn get_relating_events(cx: Ctx) -> Result<Reply> {
    relating_events(cx, None, None).await
}

pub async fn get_relating_events_with_rel_type(cx: Ctx) -> Result<Reply> {
    let rel_type = path_text(&cx, "relType")?;
    relating_events(cx, Some(rel_type), None).await
}

pub async fn get_relating_events_with_rel_type_and_event_type(cx: Ctx) -> Result<Reply> {
    let rel_type = path_text(&cx, "relType")?;
    let event_type = path_text(&cx, "eventType")?;
    relating_events(cx, Some(rel_type), Some(event_type)).await
}

fn path_text(cx: &Ctx, name: &str) -> Result<String> {
    let value = cx.param(name);
    if value.len() > MAX_ID_BYTES {
        return Err(invalid_param(format!("{name} is longer than {MAX_ID_BYTES} bytes")));
    }
    Ok(value.to_owned())
}

async fn relating_events(cx: Ctx, rel_type: Option<String>, event_type: Option<String>) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let parent_id = event_id_param(&cx)?;
    let from = token_param(&cx, "from")?;
    let to = token_param(&cx, "to")?;
    let limit = parse_limit(cx.req.query("limit"), DEFAULT_RELATIONS_LIMIT, MAX_RELATIONS_LIMIT)?;
    let dir = dir_param(&cx, Some(Direction::Backward))?;
    // Only direct relations are followed; a client that asks is told the depth reached.
    let recurse = parse_bool("recurse", cx.req.query("recurse"))?;
    let view = RoomView::open(&cx, &room_id).await?;
    let parent = view.event(&cx, &parent_id).await?;
    let selection = EventSelection {
        relates_to: Some(parent.event_id.clone()),
        rel_type,
        types: event_type.clone().map(|t| vec![t]),
        exclude_redacted: true,
        ..EventSelection::default()
    };
    let page = view.page(&cx, dir, from, to, &selection, limit).await?;
    // The type matched as a pattern in SQL; an event type is matched exactly.
    let chunk: Vec<StoredEvent> =
        page.events.into_iter().filter(|e| event_type.as_ref().is_none_or(|t| *t == e.kind)).collect();
    let mut body = Map::new();
    body.insert("chunk".into(), Value::Array(serve_bundled(&cx, &view, &chunk).await?));
    if let Some(next) = page.next {
        body.insert("next_batch".into(), stream_token(next).into());
    }
    if let Some(from) = cx.req.query("from") {
        body.insert("prev_batch".into(), from.into());
    }
    if recurse.is_some() {
        body.insert("recursion_depth".into(), 1.into());
    }
    Reply::json(&body)
}

pub async fn get_threads(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let participated_only = match cx.req.query("include") {
        None | Some("all") => false,
        Some("participated") => true,
        Some(other) => return Err(invalid_param(format!("include must be all or participated, not {other:?}"))),
    };
    let from = token_param(&cx, "from")?;
    let limit = parse_limit(cx.req.query("limit"), DEFAULT_THREADS_LIMIT, MAX_THREADS_LIMIT)?;
    let view = RoomView::open(&cx, &room_id).await?;
    let user_id = cx.requester()?.user_id.to_string();
    let query = ThreadQuery {
        room_id: &view.room_id,
        user_id: &user_id,
        visible: &view.visible,
        up_to: Some(from.unwrap_or(view.head()).min(view.head())),
        participated_only,
        limit: limit + 1,
    };
    let mut summaries = events::thread_summaries(&cx.db, &query).await?;
    let more = summaries.len() as u64 > limit;
    summaries.truncate(limit as usize);
    let next_batch = summaries.last().filter(|_| more).map(|s| stream_token((s.latest as u64).saturating_sub(1)));
    let ids: Vec<String> = summaries.iter().map(|s| s.root.clone()).collect();
    let mut roots: BTreeMap<String, StoredEvent> =
        events::get_many(&cx.db, &ids).await?.into_iter().map(|e| (e.event_id.clone(), e)).collect();
    let mut chunk_events = Vec::new();
    for summary in &summaries {
        if let Some(root) = roots.remove(&summary.root).filter(|r| view.can_see(r)) {
            chunk_events.push(root);
        }
    }
    let served = bundle(&cx, &[Served::of(&view, &chunk_events)], summaries, &ids, &ids).await?;
    let mut body = Map::new();
    body.insert("chunk".into(), Value::Array(served.into_iter().flatten().collect()));
    if let Some(next) = next_batch {
        body.insert("next_batch".into(), next.into());
    }
    Reply::json(&body)
}

/// Events of one room to serve with their aggregations, and what their reader may see of it.
pub struct Served<'a> {
    pub room_id: &'a str,
    pub version: &'a RoomVersion,
    /// Nothing after this position counts.
    pub head: u64,
    pub visible: &'a [Range],
    /// Where the reader was joined: erased senders' events elsewhere are served redacted.
    pub joined: Option<&'a [Range]>,
    pub events: Vec<&'a StoredEvent>,
}

impl<'a> Served<'a> {
    pub fn of(view: &'a RoomView, events: &'a [StoredEvent]) -> Served<'a> {
        Served {
            room_id: &view.room_id,
            version: &view.version,
            head: view.head(),
            visible: &view.visible,
            joined: Some(&view.joined),
            events: events.iter().collect(),
        }
    }

    fn sees(&self, position: u64) -> bool {
        position <= self.head && in_ranges(self.visible, position)
    }
}

/// The client format of events, with their aggregations.
pub async fn serve_bundled(cx: &Ctx, view: &RoomView, events: &[StoredEvent]) -> Result<Vec<Value>> {
    let mut served = serve_bundled_rooms(cx, &[Served::of(view, events)]).await?;
    Ok(served.pop().unwrap_or_default())
}

/// The client format of the events of several rooms, each room's in order, with their
/// aggregations. One query finds which of them have any (most have none), and each kind of
/// aggregation is then one more query, whatever the number of rooms.
pub async fn serve_bundled_rooms(cx: &Ctx, rooms: &[Served<'_>]) -> Result<Vec<Vec<Value>>> {
    let pairs: Vec<(&str, &str)> =
        rooms.iter().flat_map(|r| r.events.iter().map(|e| (r.room_id, e.event_id.as_str()))).collect();
    let children = events::aggregated_children(&cx.db, &pairs).await?;
    let with = |rel_type: &str| -> Vec<String> {
        children.iter().filter(|(_, r)| r == rel_type).map(|(parent, _)| parent.clone()).collect()
    };
    let (roots, edited, referenced) = (with("m.thread"), with("m.replace"), with("m.reference"));
    let room_of: BTreeMap<&str, &Served> =
        rooms.iter().flat_map(|r| r.events.iter().map(move |e| (e.event_id.as_str(), r))).collect();
    let parents: Vec<Parent> = roots
        .iter()
        .filter_map(|root| {
            let room = room_of.get(root.as_str())?;
            Some(Parent { event_id: root, room_id: room.room_id, head: room.head, visible: room.visible })
        })
        .collect();
    let summaries = match parents.is_empty() {
        true => Vec::new(),
        false => {
            let user_id = cx.requester()?.user_id.to_string();
            events::thread_summaries_of_roots(&cx.db, &user_id, &parents).await?
        }
    };
    bundle(cx, rooms, summaries, &edited, &referenced).await
}

/// Serves the events of `rooms`, adding to each root of `summaries` its `m.thread` aggregation,
/// to each of `edited` that has a valid edit its `m.replace` one, and to each of `referenced`
/// that has visible references its `m.reference` one.
async fn bundle(
    cx: &Ctx,
    rooms: &[Served<'_>],
    summaries: Vec<ThreadSummary>,
    edited: &[String],
    referenced: &[String],
) -> Result<Vec<Vec<Value>>> {
    let by_room: BTreeMap<&str, &Served> = rooms.iter().map(|r| (r.room_id, r)).collect();
    let sees = |room_id: &str, position: u64| by_room.get(room_id).is_some_and(|r| r.sees(position));
    let up_to = rooms.iter().map(|r| r.head).max().unwrap_or(0);
    let latest_ids: Vec<String> = summaries.iter().map(|s| s.latest_id.clone()).collect();
    let latest = async {
        match latest_ids.is_empty() {
            true => Ok(Vec::new()),
            false => events::get_many(&cx.db, &latest_ids).await,
        }
    };
    let (latest, replacements, references) = futures::try_join!(
        latest,
        events::replacements(&cx.db, edited, up_to),
        events::references(&cx.db, referenced, up_to)
    )?;
    let reader = reader(cx)?;
    let now = now_ms();
    let serve = |e: &StoredEvent| -> Option<Value> {
        by_room
            .get(e.room_id.as_str())
            .map(|room| client_event(e, room.version, Reader { joined: room.joined, ..reader }, now))
    };
    let latest: BTreeMap<String, StoredEvent> = latest.into_iter().map(|e| (e.event_id.clone(), e)).collect();
    let mut aggregations: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let visible_edits = replacements.iter().filter(|e| sees(&e.room_id, e.position()));
    for (target, edit) in latest_edits(visible_edits) {
        let Some(edit) = serve(edit) else { continue };
        aggregations.entry(target).or_default().insert("m.replace".into(), edit);
    }
    for summary in &summaries {
        let Some(latest_event) = latest.get(&summary.latest_id).and_then(serve) else { continue };
        aggregations.entry(summary.root.clone()).or_default().insert(
            "m.thread".into(),
            json!({
                "latest_event": latest_event,
                "count": summary.count as u64,
                "current_user_participated": summary.participated != 0.0,
            }),
        );
    }
    let mut chunks: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for reference in references.iter().filter(|r| sees(&r.room_id, r.position())) {
        chunks.entry(reference.relates_to.as_str()).or_default().push(json!({"event_id": reference.event_id}));
    }
    for (parent, chunk) in chunks {
        aggregations.entry(parent.to_owned()).or_default().insert("m.reference".into(), json!({"chunk": chunk}));
    }
    let serve_room = |room: &Served| -> Vec<Value> {
        room.events
            .iter()
            .map(|e| {
                let mut value = client_event(e, room.version, Reader { joined: room.joined, ..reader }, now);
                if let Some(bundled) = aggregations.get(e.event_id.as_str()) {
                    if let Some(unsigned) = value.get_mut("unsigned").and_then(Value::as_object_mut) {
                        let relations = unsigned.entry("m.relations").or_insert_with(|| json!({}));
                        if let Some(relations) = relations.as_object_mut() {
                            relations.extend(bundled.clone());
                        }
                    }
                }
                value
            })
            .collect()
    };
    Ok(rooms.iter().map(serve_room).collect())
}

/// The most recent visible replacement of each edited event, by `origin_server_ts` and then event
/// ID as the spec orders them. One without `m.new_content` is no valid edit (an encrypted one
/// cannot be checked).
fn latest_edits<'a>(visible: impl Iterator<Item = &'a StoredEvent>) -> BTreeMap<String, &'a StoredEvent> {
    let mut latest: BTreeMap<String, &StoredEvent> = BTreeMap::new();
    for edit in visible {
        let Ok(pdu) = serde_json::from_str::<Value>(&edit.json) else { continue };
        let content = &pdu["content"];
        let Some(target) = content["m.relates_to"]["event_id"].as_str() else { continue };
        if edit.kind != "m.room.encrypted" && !content["m.new_content"].is_object() {
            continue;
        }
        let newer = |current: &&StoredEvent| {
            (edit.origin_server_ts, &edit.event_id) > (current.origin_server_ts, &current.event_id)
        };
        if latest.get(target).is_none_or(newer) {
            latest.insert(target.to_owned(), edit);
        }
    }
    latest
}
