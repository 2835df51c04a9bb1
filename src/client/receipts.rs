//! Receipts and read markers: `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}` and
//! `POST /rooms/{roomId}/read_markers`.
//!
//! `m.read` and `m.read.private` receipts live in the `receipts` table, one per (room, type,
//! user, thread); `/sync` serves them through [`crate::storage::receipts::since`]. The fully read
//! marker, `m.fully_read`, is the room account data entry of that type. The requester must be
//! joined to the room and able to see the event.
//!
//! Neither moves backwards. The spec is silent; like Synapse, a receipt or marker for an event
//! at or before the one it already names is accepted (200) and ignored.

use ruma_common::EventId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::appservice::ephemeral::{self, Stream};
use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{forbidden, internal, invalid_param, Result};
use crate::http::Reply;
use crate::room::visibility::Access;
use crate::storage::account_data;
use crate::storage::events::{self, StoredEvent};
use crate::storage::receipts::{self, NewReceipt, READ, READ_PRIVATE};
use crate::storage::Statement;
use crate::time::now_ms;

use super::room_access::{event_id_param, RoomView};
use super::rooms::room_id_param;

/// The account data type of the fully read marker.
pub const FULLY_READ: &str = "m.fully_read";
/// The thread ID of a threaded receipt for the main timeline.
const MAIN_THREAD: &str = "main";
/// How often a marker write is retried when a concurrent write moved the marker first.
const MARKER_ATTEMPTS: usize = 5;

/// The receipt types the `/receipt` endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReceiptType {
    Read,
    ReadPrivate,
    FullyRead,
}

impl ReceiptType {
    fn parse(raw: &str) -> Result<Self> {
        match raw {
            READ => Ok(Self::Read),
            READ_PRIVATE => Ok(Self::ReadPrivate),
            FULLY_READ => Ok(Self::FullyRead),
            other => Err(invalid_param(format!(
                "Receipt type must be m.read, m.read.private or m.fully_read, not {other:?}"
            ))),
        }
    }
}

pub async fn post_receipt(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let receipt_type = ReceiptType::parse(cx.param("receiptType"))?;
    let event_id = event_id_param(&cx)?;
    let body: Map<String, Value> = cx.req.json_or_empty()?;
    let thread_id = parse_thread_id(body.get("thread_id"))?;
    if receipt_type == ReceiptType::FullyRead && thread_id.is_some() {
        return Err(invalid_param("thread_id is not compatible with m.fully_read"));
    }
    let view = open_joined(&cx, &room_id).await?;
    let event = view.event(&cx, &event_id).await?;
    check_thread(&event, thread_id.as_deref())?;
    let user_id = cx.requester()?.user_id.as_str();
    let ts = now_ms();
    let receipt = |receipt_type| NewReceipt {
        room_id: &view.room_id,
        receipt_type,
        user_id,
        thread_id: thread_id.as_deref(),
        event_id: &event.event_id,
        event_stream: event.position(),
        ts,
    };
    let receipt = match receipt_type {
        ReceiptType::Read => Some(receipt(READ)),
        ReceiptType::ReadPrivate => Some(receipt(READ_PRIVATE)),
        ReceiptType::FullyRead => None,
    };
    let marker = (receipt_type == ReceiptType::FullyRead).then_some(&event);
    write(&cx, &view.room_id, user_id, receipt.as_slice(), marker).await?;
    Ok(Reply::empty())
}

#[derive(Debug, Deserialize)]
struct ReadMarkers {
    #[serde(rename = "m.fully_read")]
    fully_read: Option<String>,
    #[serde(rename = "m.read")]
    read: Option<String>,
    #[serde(rename = "m.read.private")]
    read_private: Option<String>,
}

pub async fn set_read_marker(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: ReadMarkers = cx.req.json()?;
    for (name, id) in [(FULLY_READ, &body.fully_read), (READ, &body.read), (READ_PRIVATE, &body.read_private)] {
        if let Some(id) = id {
            EventId::parse(id.as_str()).map_err(|_| invalid_param(format!("{name}: {id:?} is not an event ID")))?;
        }
    }
    let view = open_joined(&cx, &room_id).await?;
    let user_id = cx.requester()?.user_id.as_str();
    let fetch = |id: &Option<String>| {
        let view = &view;
        let cx = &cx;
        let id = id.clone();
        async move {
            match id {
                Some(id) => view.event(cx, &id).await.map(Some),
                None => Ok(None),
            }
        }
    };
    let (fully_read, read, read_private) =
        futures::join!(fetch(&body.fully_read), fetch(&body.read), fetch(&body.read_private));
    let (fully_read, read, read_private) = (fully_read?, read?, read_private?);
    let ts = now_ms();
    let receipts: Vec<NewReceipt<'_>> = [(READ, &read), (READ_PRIVATE, &read_private)]
        .into_iter()
        .filter_map(|(receipt_type, event)| {
            let event = event.as_ref()?;
            Some(NewReceipt {
                room_id: &view.room_id,
                receipt_type,
                user_id,
                thread_id: None,
                event_id: &event.event_id,
                event_stream: event.position(),
                ts,
            })
        })
        .collect();
    write(&cx, &view.room_id, user_id, &receipts, fully_read.as_ref()).await?;
    Ok(Reply::empty())
}

/// The room, for a requester who is joined to it: `M_NOT_FOUND` for an unknown room,
/// `M_FORBIDDEN` for anyone not joined.
async fn open_joined(cx: &Ctx, room_id: &ruma_common::RoomId) -> Result<RoomView> {
    let view = RoomView::open(cx, room_id).await?;
    if view.access != Access::Joined {
        return Err(forbidden("You are not joined to this room"));
    }
    Ok(view)
}

/// The `thread_id` of a receipt body: absent, `main`, or an event ID; `M_INVALID_PARAM`
/// otherwise.
fn parse_thread_id(raw: Option<&Value>) -> Result<Option<String>> {
    match raw {
        None => Ok(None),
        Some(Value::String(s)) if s == MAIN_THREAD => Ok(Some(s.clone())),
        Some(Value::String(s)) if EventId::parse(s.as_str()).is_ok() => Ok(Some(s.clone())),
        Some(Value::String(s)) if s.is_empty() => Err(invalid_param("thread_id must be a non-empty string")),
        Some(Value::String(s)) => Err(invalid_param(format!("thread_id must be \"main\" or an event ID, not {s:?}"))),
        Some(_) => Err(invalid_param("thread_id must be a string")),
    }
}

/// The root of the thread an event is directly in: the target of its `m.thread` relation.
fn thread_root(event: &StoredEvent) -> Option<String> {
    let pdu: Value = serde_json::from_str(&event.json).ok()?;
    let relation = pdu.get("content")?.get("m.relates_to")?;
    if relation.get("rel_type")?.as_str()? != "m.thread" {
        return None;
    }
    relation.get("event_id")?.as_str().map(str::to_owned)
}

/// Refuses a threaded receipt whose event is certainly not in that thread: an event with an
/// `m.thread` relation is in its root's thread, not in `main` nor in another thread. Events in
/// a thread only through another relation (a reaction to a thread reply) are not followed, so
/// they pass whatever the thread.
fn check_thread(event: &StoredEvent, thread_id: Option<&str>) -> Result<()> {
    let (Some(thread_id), Some(root)) = (thread_id, thread_root(event)) else { return Ok(()) };
    if thread_id != root {
        return Err(invalid_param(format!("The event is in the thread of {root}, not in {thread_id:?}")));
    }
    Ok(())
}

/// Records the receipts and moves the fully read marker to `marker`, in one batch. A marker at
/// or after `marker` stays; a marker moved concurrently is read again.
async fn write(
    cx: &Ctx,
    room_id: &str,
    user_id: &str,
    receipts: &[NewReceipt<'_>],
    marker: Option<&StoredEvent>,
) -> Result<()> {
    for _ in 0..MARKER_ATTEMPTS {
        let mut statements = receipts.iter().map(|r| receipts::advance(&cx.db, r)).collect::<Result<Vec<_>>>()?;
        let marker_write = match marker {
            Some(event) => marker_statement(cx, room_id, user_id, event).await?,
            None => None,
        };
        let wrote_marker = marker_write.is_some();
        statements.extend(marker_write);
        if statements.is_empty() {
            return Ok(());
        }
        let changed = cx.db.batch(statements).await?;
        // The marker statement is last; it changes nothing only when it lost a race.
        if !wrote_marker || changed.last().is_some_and(|n| *n > 0) {
            if changed.iter().take(receipts.len()).any(|n| *n > 0) {
                // A receipt that moved may have cleared notifications: push gateways get the badge.
                let (env, user) = (cx.env.clone(), user_id.to_owned());
                cx.in_background(async move { crate::push::fanout::update_badge(&env, &user).await });
            }
            if !receipts.is_empty() {
                let positions = Positions { receipts: receipts::max_stream_id(&cx.db).await?, ..Positions::default() };
                user_sync::notify_room(&cx.env, &cx.db, room_id, positions).await?;
                if receipts.iter().any(|r| r.receipt_type == receipts::READ) {
                    ephemeral::poke(cx, Stream::Ephemeral, None);
                }
            }
            if wrote_marker {
                super::account_data::wake_syncs(cx, user_id).await?;
            }
            return Ok(());
        }
    }
    Err(internal("read marker", "the marker kept moving under concurrent writes"))
}

/// The write that moves the marker to `event`, or `None` when it is already there or later.
async fn marker_statement(cx: &Ctx, room_id: &str, user_id: &str, event: &StoredEvent) -> Result<Option<Statement>> {
    let current = account_data::get(&cx.db, user_id, room_id, FULLY_READ).await?;
    let at = current.as_ref().map_or(0, |c| c.stream_id);
    let current_event = current.and_then(|c| marker_event_id(&c.content));
    if let Some(current_event) = current_event {
        if current_event == event.event_id {
            return Ok(None);
        }
        let current_position = events::get(&cx.db, &current_event).await?.map(|e| e.position());
        if current_position.is_some_and(|p| p >= event.position()) {
            return Ok(None);
        }
    }
    let content = json!({ "event_id": event.event_id }).to_string();
    account_data::set_if_at(&cx.db, user_id, room_id, FULLY_READ, &content, at).map(Some)
}

/// The event a stored `m.fully_read` content names.
fn marker_event_id(content_json: &str) -> Option<String> {
    let content: Value = serde_json::from_str(content_json).ok()?;
    content.get("event_id")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn kind(r: Result<impl std::fmt::Debug>) -> ErrorKind {
        r.unwrap_err().matrix().unwrap().kind
    }

    #[test]
    fn receipt_types() {
        assert_eq!(ReceiptType::parse("m.read").unwrap(), ReceiptType::Read);
        assert_eq!(ReceiptType::parse("m.read.private").unwrap(), ReceiptType::ReadPrivate);
        assert_eq!(ReceiptType::parse("m.fully_read").unwrap(), ReceiptType::FullyRead);
        for bad in ["", "m.READ", "m.receipt", "m.read.public"] {
            assert_eq!(kind(ReceiptType::parse(bad)), ErrorKind::InvalidParam, "{bad:?}");
        }
    }

    #[test]
    fn thread_ids() {
        assert_eq!(parse_thread_id(None).unwrap(), None);
        assert_eq!(parse_thread_id(Some(&json!("main"))).unwrap().as_deref(), Some("main"));
        assert_eq!(parse_thread_id(Some(&json!("$root"))).unwrap().as_deref(), Some("$root"));
        assert_eq!(parse_thread_id(Some(&json!("$root:hs"))).unwrap().as_deref(), Some("$root:hs"));
        for bad in [json!(""), json!("MAIN"), json!("root"), json!(null), json!(1), json!(["main"]), json!({})] {
            assert_eq!(kind(parse_thread_id(Some(&bad))), ErrorKind::InvalidParam, "{bad}");
        }
    }

    fn event(content: Value) -> StoredEvent {
        StoredEvent {
            stream_ordering: 5.0,
            event_id: "$e".into(),
            room_id: "!r:hs".into(),
            kind: "m.room.message".into(),
            state_key: None,
            sender: "@a:hs".into(),
            origin_server_ts: 0.0,
            membership: None,
            txn_device_id: None,
            txn_id: None,
            prev_state: None,
            json: json!({ "type": "m.room.message", "content": content }).to_string(),
            redaction_json: None,
            redaction_id: None,
            sender_erased: 0.0,
        }
    }

    #[test]
    fn a_thread_reply_is_only_in_its_thread() {
        let reply = event(json!({"body": "x", "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}));
        assert_eq!(thread_root(&reply).as_deref(), Some("$root"));
        assert!(check_thread(&reply, None).is_ok(), "unthreaded receipts go anywhere");
        assert!(check_thread(&reply, Some("$root")).is_ok());
        assert_eq!(kind(check_thread(&reply, Some("main"))), ErrorKind::InvalidParam);
        assert_eq!(kind(check_thread(&reply, Some("$other"))), ErrorKind::InvalidParam);
    }

    #[test]
    fn events_outside_threads_pass() {
        let plain = event(json!({"body": "x"}));
        let reaction = event(json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$r", "key": "+"}}));
        for e in [&plain, &reaction] {
            assert_eq!(thread_root(e), None);
            assert!(check_thread(e, Some("main")).is_ok());
            assert!(check_thread(e, Some("$root")).is_ok());
        }
    }

    #[test]
    fn stored_markers() {
        assert_eq!(marker_event_id(r#"{"event_id":"$x"}"#).as_deref(), Some("$x"));
        assert_eq!(marker_event_id("{}"), None);
        assert_eq!(marker_event_id("not json"), None);
    }
}
