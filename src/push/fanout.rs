//! What a room's writer does with push rules after a commit: evaluate the events for the
//! members, record the notifications (the unread counts that `/sync` serves), and hand those
//! that notify to the push queue of each user with a pusher.

use std::collections::{BTreeMap, BTreeSet};

use ruma_common::OwnedUserId;
use serde::Deserialize;
use worker::Env;

use super::evaluate::{self, PushEvent, RoomSnapshot};
use super::notification::EventNotification;
use super::rules;
use crate::durable_objects::push_queue::{self, Delivery};
use crate::error::Result;
use crate::storage::event_push_actions::{self, NewAction};
use crate::storage::{pushers, rows, BatchError, Db};
use crate::time::now_ms;

/// Rows per insert statement: D1 bounds a statement at 100 KB, and a row is a few hundred bytes.
const ROWS_PER_STATEMENT: usize = 200;

/// What [`record`] wrote.
pub struct Recorded {
    /// The notifications stream's position after the rows (0 when there were none).
    pub position: u64,
    /// Each notified user's notifications, in stream order.
    pub pushes: BTreeMap<OwnedUserId, Vec<EventNotification>>,
}

/// Evaluates `events` for the room's members and records their notifications, and the new
/// baselines of joiners, in one read of the members' rules and one batch of writes whatever the
/// room's size. A retry records nothing twice.
pub async fn record(db: &Db, snapshot: &RoomSnapshot, events: &[PushEvent]) -> Result<Recorded> {
    let mut recorded = Recorded { position: 0, pushes: BTreeMap::new() };
    let mut statements = Vec::new();
    for join in events.iter().filter(|e| e.kind == "m.room.member" && e.state_key.as_deref() == Some(e.sender.as_str()))
    {
        statements.push(event_push_actions::set_baseline(db, &join.event_id)?);
    }
    let users: BTreeSet<OwnedUserId> = events.iter().flat_map(|e| snapshot.recipients(e)).collect();
    let mut actions = Vec::new();
    if !users.is_empty() {
        let recipients = rules::load_many(db, &users.into_iter().collect::<Vec<_>>()).await?;
        for event in events {
            let thread_id = event.thread_id();
            for decision in evaluate::evaluate(snapshot, event, &recipients).await {
                if decision.notify {
                    let notification = evaluate::notification(snapshot, event, &decision);
                    recorded.pushes.entry(decision.user_id.clone()).or_default().push(notification);
                }
                actions.push(NewAction {
                    user_id: decision.user_id.to_string(),
                    room_id: snapshot.room_id.to_string(),
                    event_id: event.event_id.clone(),
                    event_stream: event.stream_ordering,
                    thread_id: thread_id.clone(),
                    notify: decision.notify,
                    highlight: decision.highlight,
                    actions: serde_json::Value::Array(decision.actions).to_string(),
                });
            }
        }
    }
    if statements.is_empty() && actions.is_empty() {
        return Ok(recorded);
    }
    let now = now_ms();
    for chunk in actions.chunks(ROWS_PER_STATEMENT) {
        statements.push(event_push_actions::insert(db, chunk, now)?);
    }
    statements.push(event_push_actions::max_stream_id(db)?);
    let results = db.batch_rows(statements).await.map_err(|e| match e {
        BatchError::Conflict(what) => crate::error::internal("push actions", what),
        BatchError::Failed(e) => e,
    })?;
    #[derive(Deserialize)]
    struct Head {
        stream_id: f64,
    }
    let head: Vec<Head> = results.last().map(rows).transpose()?.unwrap_or_default();
    recorded.position = head.first().map_or(0, |h| h.stream_id as u64);
    Ok(recorded)
}

/// Hands each notified user's notifications to their push queue, if they have a pusher, with
/// the pushers and the user's badge read here in two queries for all of them, so that a queue
/// reads nothing before it sends. A failure is logged: the notifications stay recorded, only
/// the push is lost.
pub async fn deliver(env: &Env, db: &Db, pushes: BTreeMap<OwnedUserId, Vec<EventNotification>>) {
    if pushes.is_empty() {
        return;
    }
    let users: Vec<&str> = pushes.keys().map(|u| u.as_str()).collect();
    let read = futures::try_join!(pushers::for_users(db, &users), event_push_actions::unread_rooms_of(db, &users));
    let (mut targets, unread) = match read {
        Ok(read) => read,
        Err(e) => {
            crate::log::error(&format!("finding pushers: {e:?}"));
            return;
        }
    };
    let deliveries = pushes.into_iter().filter_map(|(user, notifications)| {
        let pushers = targets.remove(user.as_str())?;
        let unread = unread.get(user.as_str()).copied().unwrap_or(0);
        Some(Delivery { user_id: user.to_string(), notifications, pushers, unread })
    });
    if let Err(e) = push_queue::enqueue_many(env, deliveries.collect()).await {
        crate::log::error(&format!("queueing pushes: {e:?}"));
    }
}

/// Sends the user's pushers their new badge after a read receipt, if they have any.
pub async fn update_badge(env: &Env, user_id: &str) {
    let outcome = async {
        if pushers::for_users(&Db::new(env)?, &[user_id]).await?.is_empty() {
            return Ok(());
        }
        push_queue::badge(env, user_id).await
    };
    if let Err(e) = outcome.await {
        crate::log::error(&format!("updating the badge of {user_id}: {e:?}"));
    }
}
