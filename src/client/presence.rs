//! Presence: `GET` and `PUT /presence/{userId}/status`, and what `/sync` sets (`set_presence`)
//! and serves (`presence.events`).
//!
//! A user's presence is seen by the users who share a joined room with them, and by themselves.
//! Every change takes a new position in the presence stream and wakes those users' syncs.
//! With `ENABLE_PRESENCE=false` nothing is stored: requests are checked, everyone is `offline`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::appservice::ephemeral::{self, Stream};
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{forbidden, invalid_param, Result};
use crate::http::Reply;
use crate::router::Ctx;
use crate::storage::presence::{self, PresenceRow};
use crate::time::now_ms;

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
    cx.db.run(presence::set(&cx.db, &user_id, state, body.status_msg.as_deref(), now_ms())?).await?;
    announce(&cx, &user_id).await?;
    Ok(Reply::empty())
}

/// What a sync's `set_presence` does: `online` (also when absent) and `unavailable` are what the
/// device asks for, and `offline` leaves the presence alone. When a device asks for something
/// new, the user takes the most available state its devices ask for: two devices that differ
/// settle, and a state set with `PUT` stays until a device changes its mind. Only a change is
/// written and announced.
pub async fn on_sync(cx: &Ctx, user_id: &str, device_id: &str, set_presence: Option<&str>) -> Result<()> {
    let state = match set_presence {
        _ if !cx.config.enable_presence => return Ok(()),
        None => "online",
        Some("offline") => return Ok(()),
        Some(other) => valid_state(other)?,
    };
    if cx.db.run(presence::set_device_state(&cx.db, user_id, device_id, state)?).await? == 0 {
        return Ok(());
    }
    if cx.db.run(presence::follow_devices(&cx.db, user_id, now_ms())?).await? > 0 {
        announce(cx, user_id).await?;
    }
    Ok(())
}

/// One of the spec's three states, or `M_INVALID_PARAM`.
pub fn valid_state(raw: &str) -> Result<&'static str> {
    presence::STATES
        .iter()
        .find(|s| **s == raw)
        .copied()
        .ok_or_else(|| invalid_param("presence must be online, unavailable or offline"))
}

/// Wakes the syncs of everyone who sees `user_id`'s presence, after the response.
async fn announce(cx: &Ctx, user_id: &str) -> Result<()> {
    let positions = Positions { presence: presence::max_stream_id(&cx.db).await?, ..Positions::default() };
    let mut watchers = presence::co_members(&cx.db, user_id).await?;
    if !watchers.iter().any(|w| w == user_id) {
        watchers.push(user_id.to_owned());
    }
    ephemeral::poke(cx, Stream::Ephemeral, Some(watchers.clone()));
    let env = cx.env.clone();
    cx.in_background(async move {
        let wakes = watchers.iter().map(|user| user_sync::notify(&env, user, positions));
        let _ = futures::future::join_all(wakes).await;
    });
    Ok(())
}

/// A stored presence as an `m.presence` event, its times as of `now`.
pub fn presence_event(row: &PresenceRow, now: u64) -> Value {
    json!({"type": "m.presence", "sender": row.user_id, "content": content(row, now)})
}

fn content(row: &PresenceRow, now: u64) -> Value {
    let mut content = Map::new();
    content.insert("presence".into(), json!(row.presence));
    content.insert("last_active_ago".into(), json!(now.saturating_sub(row.last_active_ts as u64)));
    if row.presence == "online" {
        // Nothing here refreshes the last active time while online: clients take it as now.
        content.insert("currently_active".into(), json!(true));
    }
    if let Some(msg) = &row.status_msg {
        content.insert("status_msg".into(), json!(msg));
    }
    Value::Object(content)
}
