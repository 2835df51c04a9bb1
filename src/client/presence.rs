//! Presence: `GET` and `PUT /presence/{userId}/status`, what `/sync` sets (`set_presence`) and
//! serves (`presence.events`), activity, and `POST /_stratus/admin/v1/send_online_presence_to`.
//!
//! A user's presence is owned by the user's `UserSync` object, which decides it and runs its
//! timers (`durable_objects/user_presence.rs`); every change takes a new position in the
//! presence stream and wakes the syncs of those who see it. A user's presence is seen by the
//! users who share a joined room with them, by themselves, and by whom presence routers add
//! (`src/presence/router.rs`); routing never opens `GET` to users who share no room.
//! With `ENABLE_PRESENCE=false` nothing is stored: requests are checked, everyone is `offline`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::durable_objects::user_presence::PresenceOp;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{forbidden, invalid_param, Result};
use crate::http::Reply;
use crate::presence::router::{self, Interested, PresenceRouter};
use crate::presence::state::State;
use crate::storage::presence::{self, PresenceRow};
use crate::time::now_ms;

/// The most users one `send_online_presence_to` names.
const MAX_SNAPSHOT_USERS: usize = 1000;

#[derive(Debug, Deserialize)]
struct PresenceBody {
    presence: String,
    status_msg: Option<String>,
}

pub async fn get_presence(cx: Ctx) -> Result<Reply> {
    let reader = cx.requester()?.user_id.as_str();
    let user_id = cx.path_user()?.as_str();
    if user_id != reader && !presence::share_a_room(&cx.db, reader, user_id).await? {
        return Err(forbidden("You are not allowed to see their presence"));
    }
    let stored = match cx.config.enable_presence {
        true => presence::get(&cx.db, user_id).await?,
        false => None,
    };
    let content = match stored {
        Some(row) => content(&row, now_ms()),
        None => json!({"presence": "offline"}),
    };
    Reply::json(&content)
}

pub async fn set_presence(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let body: PresenceBody = cx.req.json()?;
    let state = valid_state(&body.presence)?;
    if !cx.config.enable_presence {
        return Ok(Reply::empty());
    }
    user_sync::presence(&cx.env, &user_id, PresenceOp::Set { state, status_msg: body.status_msg }).await?;
    Ok(Reply::empty())
}

/// What a sync's `set_presence` does: `online` (also when absent) and `unavailable` are what the
/// device asks for, and the sync counts as the device syncing; an explicit `online` is activity
/// too. `offline` leaves presence alone. Returns whether the sync affects presence.
pub async fn on_sync(cx: &Ctx, user_id: &str, device_id: &str, set_presence: Option<&str>) -> Result<bool> {
    let wants = match set_presence {
        _ if !cx.config.enable_presence => return Ok(false),
        None => State::Online,
        Some(raw) => valid_state(raw)?,
    };
    if wants == State::Offline {
        return Ok(false);
    }
    let op = PresenceOp::Sync {
        device: device_id.to_owned(),
        wants,
        active: set_presence.is_some() && wants == State::Online,
    };
    // Presence is no reason to fail a sync: without its owner, this sync does not count.
    match user_sync::presence(&cx.env, user_id, op).await {
        Ok(()) => Ok(true),
        Err(e) => {
            crate::log::error(&format!("presence of {user_id}'s sync: {e:?}"));
            Ok(false)
        }
    }
}

/// The requester did something (sent an event): it counts as activity, after the response.
pub fn activity(cx: &Ctx) {
    let Ok(requester) = cx.requester() else { return };
    // A service acting as its sender is not a user at a client.
    if !cx.config.enable_presence || requester.device_id.is_empty() {
        return;
    }
    let (env, user_id) = (cx.env.clone(), requester.user_id.to_string());
    cx.in_background(async move {
        if let Err(e) = user_sync::presence(&env, &user_id, PresenceOp::Active).await {
            crate::log::error(&format!("presence activity of {user_id}: {e:?}"));
        }
    });
}

/// One of the spec's three states, or `M_INVALID_PARAM`.
pub fn valid_state(raw: &str) -> Result<State> {
    State::parse(raw).ok_or_else(|| invalid_param("presence must be online, unavailable or offline"))
}

/// The presence `reader` gets in a sync from `after` up to `upto`: shared-room presence, and
/// what the routers add.
pub async fn for_sync(cx: &Ctx, reader: &str, after: u64, upto: u64) -> Result<Vec<PresenceRow>> {
    if !cx.config.enable_presence {
        return Ok(Vec::new());
    }
    let routed = match router::configured(&cx.config).get_interested_users(reader) {
        Interested::All => None,
        Interested::Users(users) => Some(users.into_iter().collect::<Vec<_>>()),
    };
    presence::visible(&cx.db, reader, after, upto, routed.as_deref()).await
}

/// What an incremental sync adds to [`for_sync`]: the current presence of the users who newly
/// share a room with the reader between two positions of the event stream.
pub async fn newly_joined(cx: &Ctx, reader: &str, after: Option<u64>, upto: u64) -> Result<Vec<PresenceRow>> {
    match after {
        Some(after) if cx.config.enable_presence && upto > after => {
            presence::newly_joined(&cx.db, reader, after, upto).await
        }
        _ => Ok(Vec::new()),
    }
}

#[derive(Debug, Deserialize)]
struct SnapshotBody {
    users: Vec<ruma_common::OwnedUserId>,
}

/// What Synapse's `ModuleApi.send_local_online_presence_to` does: the next sync of each of
/// `users` gets the current presence of every online user it may see, as an initial sync would,
/// even where nothing changed. Users of other servers are ignored. A server admin's call.
pub async fn send_online_presence_to(cx: Ctx) -> Result<Reply> {
    let body: SnapshotBody = cx.req.json()?;
    if body.users.len() > MAX_SNAPSHOT_USERS {
        return Err(invalid_param(format!("At most {MAX_SNAPSHOT_USERS} users at once")));
    }
    let users: Vec<String> =
        body.users.iter().filter(|u| u.server_name() == cx.config.server_name).map(|u| u.to_string()).collect();
    if !cx.config.enable_presence || users.is_empty() {
        return Reply::json(&json!({}));
    }
    let position = presence::send_full_snapshot(&cx.db, &users).await?;
    let positions = Positions { presence: position, ..Positions::default() };
    let env = cx.env.clone();
    cx.in_background(async move {
        if let Err(e) = user_sync::notify_many(&env, users, positions).await {
            crate::log::error(&format!("waking syncs for presence snapshots: {e:?}"));
        }
    });
    Reply::json(&json!({}))
}

/// A stored presence as an `m.presence` event, its times as of `now`.
pub fn presence_event(row: &PresenceRow, now: u64) -> Value {
    json!({"type": "m.presence", "sender": row.user_id, "content": content(row, now)})
}

fn content(row: &PresenceRow, now: u64) -> Value {
    let mut content = Map::new();
    content.insert("presence".into(), json!(row.presence));
    if row.last_active_ts > 0.0 {
        content.insert("last_active_ago".into(), json!(now.saturating_sub(row.last_active_ts as u64)));
    }
    if row.currently_active != 0.0 {
        content.insert("currently_active".into(), json!(true));
    }
    if let Some(msg) = &row.status_msg {
        content.insert("status_msg".into(), json!(msg));
    }
    Value::Object(content)
}
