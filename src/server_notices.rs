//! Server notices: a room per user, made by the notices user (`SERVER_NOTICES_LOCALPART`), who
//! invites the user into it. The room is tagged `m.server_notice`, and the user's power level
//! (-10) lets them neither post nor invite there.
//!
//! The usage-limit notice follows Synapse's `ResourceLimitsServerNotices`: when the server is at
//! its monthly active user limit, each active user's next sync sends an `m.server_notice` of type
//! `m.server_notice.usage_limit_reached` and pins it; below the limit, the next sync unpins it.
//! Whether one is pinned comes with the token lookup, so a sync checks this at no cost.

use ruma_common::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{json, Map, Value};

use crate::auth::Requester;
use crate::client::account_data::wake_syncs;
use crate::client::create_room::{self, default_power_levels, template, NewRoom};
use crate::context::Ctx;
use crate::durable_objects::room::{self, Facts, RoomRequest};
use crate::error::{internal, LimitType, Result};
use crate::room::pdu::EventTemplate;
use crate::room::versions::{self, RoomVersion};
use crate::storage::{account_data, current_state, monthly_active_users, profiles, server_notice_rooms, users};
use crate::time::now_ms;

pub const TAG: &str = "m.server_notice";
pub const MSGTYPE: &str = "m.server_notice";
pub const USAGE_LIMIT_REACHED: &str = "m.server_notice.usage_limit_reached";
const ROOM_NAME: &str = "Server Notices";
const PINNED: &str = "m.room.pinned_events";

/// The notices user, or an error saying notices are off.
pub fn sender(cx: &Ctx) -> Result<&UserId> {
    cx.config
        .server_notices_mxid
        .as_deref()
        .ok_or_else(|| crate::error::bad_json("Server notices are not enabled on this server"))
}

/// Sends an event to the user's notices room, making the room first if need be; returns its ID.
pub async fn send(cx: &Ctx, user_id: &UserId, kind: &str, state_key: Option<&str>, content: Value) -> Result<String> {
    let notices = sender(cx)?.to_owned();
    let room_id = notice_room(cx, &notices, user_id).await?;
    let sent = send_as(cx, &room_id, template(kind, state_key, &notices, content)?).await?;
    Ok(sent)
}

async fn send_as(cx: &Ctx, room_id: &RoomId, template: EventTemplate) -> Result<String> {
    let request = RoomRequest::Send { room_id: room_id.to_owned(), template, txn: None, facts: Facts::default() };
    let sent = room::call(&cx.env, room_id.as_str(), &request).await?;
    sent.into_iter().next().map(|s| s.event_id.to_string()).ok_or_else(|| internal("notices", "nothing sent"))
}

/// The user's notices room; made, or the user invited back, when they are not in it.
async fn notice_room(cx: &Ctx, notices: &UserId, user_id: &UserId) -> Result<OwnedRoomId> {
    if let Some(room_id) = server_notice_rooms::get(&cx.db, user_id.as_str()).await? {
        let room_id = RoomId::parse(room_id).map_err(|e| internal("stored room ID", e))?;
        let membership = current_state::membership(&cx.db, room_id.as_str(), user_id.as_str()).await?;
        if !matches!(membership.as_ref().map(|(m, _)| m.as_str()), Some("join" | "invite")) {
            let invite = template("m.room.member", Some(user_id.as_str()), notices, json!({"membership": "invite"}))?;
            send_as(cx, &room_id, invite).await?;
        }
        return Ok(room_id);
    }
    let now = now_ms();
    cx.db
        .batch(vec![
            users::insert_if_absent(&cx.db, notices.as_str(), now)?,
            profiles::set(&cx.db, notices.as_str(), "displayname", &Value::from(ROOM_NAME).to_string())?,
        ])
        .await?;
    let version = RoomVersion::parse(versions::DEFAULT)?;
    let mut power_levels = default_power_levels(&version, notices, &[]);
    power_levels.insert("users_default".into(), (-10).into());
    let member = |user: &UserId, content: Value| template("m.room.member", Some(user.as_str()), notices, content);
    let events = vec![
        member(notices, json!({"membership": "join", "displayname": ROOM_NAME}))?,
        template("m.room.power_levels", Some(""), notices, Value::Object(power_levels))?,
        template("m.room.join_rules", Some(""), notices, json!({"join_rule": "invite"}))?,
        template("m.room.history_visibility", Some(""), notices, json!({"history_visibility": "shared"}))?,
        template("m.room.name", Some(""), notices, json!({"name": ROOM_NAME}))?,
        member(user_id, json!({"membership": "invite"}))?,
    ];
    let room = NewRoom {
        version,
        creator: notices.to_owned(),
        creation_content: Map::new(),
        events,
        is_public: false,
        alias: None,
    };
    let room_id = create_room::create(cx, room).await?;
    let tags = json!({"tags": {TAG: {}}}).to_string();
    cx.db
        .batch(vec![
            server_notice_rooms::insert(&cx.db, user_id.as_str(), room_id.as_str())?,
            account_data::set(&cx.db, user_id.as_str(), room_id.as_str(), "m.tag", &tags)?,
        ])
        .await?;
    wake_syncs(cx, user_id.as_str()).await?;
    // Two first notices at once made two rooms: the one stored first is the room.
    match server_notice_rooms::get(&cx.db, user_id.as_str()).await? {
        Some(stored) => RoomId::parse(stored).map_err(|e| internal("stored room ID", e)),
        None => Ok(room_id),
    }
}

/// Before a sync: pin the usage-limit notice if the server is at its limit, unpin it if not.
pub async fn on_sync(cx: &Ctx, requester: &Requester) -> Result<()> {
    let config = &cx.config;
    let Some(notices) = config.server_notices_mxid.as_deref() else { return Ok(()) };
    let Some(standing) = requester.standing.as_ref() else { return Ok(()) };
    // Only active users hear of the limit (as Synapse); never the notices user, nor a puppet.
    if !config.mau.enabled
        || config.hs_disabled.is_some()
        || standing.mau_ts.is_none()
        || requester.puppeted_by.is_some()
        || requester.user_id == notices
    {
        return Ok(());
    }
    let count = match standing.mau_count {
        Some(n) => n,
        None => monthly_active_users::count(&cx.db).await?,
    };
    let at_limit = count >= config.mau.max;
    let user = requester.user_id.as_str();
    match (&requester.limit_notice_id, at_limit) {
        (None, true) => {
            let refusal = crate::auth_blocking::refusal(config, LimitType::MonthlyActiveUser);
            let content = json!({
                "body": refusal.message,
                "msgtype": MSGTYPE,
                "server_notice_type": USAGE_LIMIT_REACHED,
                "admin_contact": refusal.admin_contact,
                "limit_type": LimitType::MonthlyActiveUser.as_str(),
            });
            let event_id = send(cx, &requester.user_id, "m.room.message", None, content).await?;
            send(cx, &requester.user_id, PINNED, Some(""), json!({"pinned": [event_id]})).await?;
            cx.db.run(server_notice_rooms::set_limit_notice(&cx.db, user, Some(&event_id))?).await?;
        }
        (Some(event_id), false) => {
            let room_id = server_notice_rooms::get(&cx.db, user).await?.unwrap_or_default();
            let pinned = current_state::content_of(&cx.db, &room_id, PINNED, "").await?;
            let others: Vec<Value> = pinned
                .and_then(|c| c.get("pinned").and_then(Value::as_array).cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|id| id.as_str() != Some(event_id.as_str()))
                .collect();
            send(cx, &requester.user_id, PINNED, Some(""), json!({"pinned": others})).await?;
            cx.db.run(server_notice_rooms::set_limit_notice(&cx.db, user, None)?).await?;
        }
        _ => {}
    }
    Ok(())
}

/// `POST /_synapse/admin/v1/send_server_notice`: `{user_id, content, type?, state_key?}`.
pub async fn send_server_notice(cx: Ctx) -> Result<crate::http::Reply> {
    #[derive(serde::Deserialize)]
    struct Body {
        user_id: String,
        content: Map<String, Value>,
        #[serde(rename = "type")]
        kind: Option<String>,
        state_key: Option<String>,
    }
    let body: Body = cx.req.json()?;
    sender(&cx)?;
    let user_id: OwnedUserId = UserId::parse(body.user_id.as_str())
        .map_err(|_| crate::error::invalid_param("user_id is not a valid user ID"))?;
    if user_id.server_name() != cx.config.server_name {
        return Err(crate::error::bad_json("Server notices can only be sent to local users"));
    }
    match users::get(&cx.db, user_id.as_str()).await? {
        Some(u) if !u.is_deactivated() => {}
        _ => return Err(crate::error::not_found("User not found")),
    }
    let kind = body.kind.as_deref().unwrap_or("m.room.message");
    let event_id = send(&cx, &user_id, kind, body.state_key.as_deref(), Value::Object(body.content)).await?;
    crate::http::Reply::json(&json!({ "event_id": event_id }))
}
