//! Relations and threads: `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` and
//! `GET /rooms/{roomId}/threads`, and the aggregations that events carry wherever they are served:
//! `m.thread` on thread roots, `m.replace` (the most recent valid edit) on edited events.
//!
//! A redacted event has lost its `m.relates_to`, so it is no longer a relation nor a thread reply.
//! Counts and latest replies only take in the replies the reader may see.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{invalid_param, Result};
use crate::http::Reply;
use crate::storage::events::{self, Direction, EventSelection, StoredEvent, ThreadQuery, ThreadSummary};

use super::room_access::{dir_param, event_id_param, parse_bool, parse_limit, stream_token, token_param, RoomView};
use super::rooms::room_id_param;

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
        roots: None,
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
    let chunk = bundle(&cx, &view, &chunk_events, summaries, &ids).await?;
    let mut body = Map::new();
    body.insert("chunk".into(), Value::Array(chunk));
    if let Some(next) = next_batch {
        body.insert("next_batch".into(), next.into());
    }
    Reply::json(&body)
}

/// The client format of events, with their aggregations. One query finds which of them have
/// any; most have none.
pub async fn serve_bundled(cx: &Ctx, view: &RoomView, events: &[StoredEvent]) -> Result<Vec<Value>> {
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let children = events::aggregated_children(&cx.db, &view.room_id, &ids).await?;
    let with = |rel_type: &str| -> Vec<String> {
        children.iter().filter(|(_, r)| r == rel_type).map(|(parent, _)| parent.clone()).collect()
    };
    let (roots, edited) = (with("m.thread"), with("m.replace"));
    let summaries = match roots.is_empty() {
        true => Vec::new(),
        false => {
            let user_id = cx.requester()?.user_id.to_string();
            let query = ThreadQuery {
                room_id: &view.room_id,
                user_id: &user_id,
                visible: &view.visible,
                roots: Some(&roots),
                up_to: Some(view.head()),
                participated_only: false,
                limit: roots.len() as u64,
            };
            events::thread_summaries(&cx.db, &query).await?
        }
    };
    bundle(cx, view, events, summaries, &edited).await
}

/// Serves `events`, adding to each root of `summaries` its `m.thread` aggregation and to each of
/// `edited` that has a valid edit its `m.replace` one.
async fn bundle(
    cx: &Ctx,
    view: &RoomView,
    events: &[StoredEvent],
    summaries: Vec<ThreadSummary>,
    edited: &[String],
) -> Result<Vec<Value>> {
    let latest_ids: Vec<String> = summaries.iter().map(|s| s.latest_id.clone()).collect();
    let latest = async {
        match latest_ids.is_empty() {
            true => Ok(Vec::new()),
            false => events::get_many(&cx.db, &latest_ids).await,
        }
    };
    let (latest, replacements) =
        futures::try_join!(latest, events::replacements(&cx.db, &view.room_id, edited, view.head()))?;
    let latest: BTreeMap<String, StoredEvent> = latest.into_iter().map(|e| (e.event_id.clone(), e)).collect();
    let mut aggregations: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (target, edit) in latest_edits(view, &replacements) {
        aggregations.entry(target).or_default().insert("m.replace".into(), view.serve(cx, edit)?);
    }
    for summary in &summaries {
        let Some(latest_event) = latest.get(&summary.latest_id) else { continue };
        aggregations.entry(summary.root.clone()).or_default().insert(
            "m.thread".into(),
            json!({
                "latest_event": view.serve(cx, latest_event)?,
                "count": summary.count as u64,
                "current_user_participated": summary.participated != 0.0,
            }),
        );
    }
    let mut served = Vec::with_capacity(events.len());
    for e in events {
        let mut value = view.serve(cx, e)?;
        if let Some(bundled) = aggregations.get(e.event_id.as_str()) {
            if let Some(unsigned) = value.get_mut("unsigned").and_then(Value::as_object_mut) {
                let relations = unsigned.entry("m.relations").or_insert_with(|| json!({}));
                if let Some(relations) = relations.as_object_mut() {
                    relations.extend(bundled.clone());
                }
            }
        }
        served.push(value);
    }
    Ok(served)
}

/// The most recent visible replacement of each edited event, by `origin_server_ts` and then event
/// ID as the spec orders them. One without `m.new_content` is no valid edit (an encrypted one
/// cannot be checked).
fn latest_edits<'a>(view: &RoomView, replacements: &'a [StoredEvent]) -> BTreeMap<String, &'a StoredEvent> {
    let mut latest: BTreeMap<String, &StoredEvent> = BTreeMap::new();
    for edit in replacements.iter().filter(|e| view.can_see(e)) {
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
