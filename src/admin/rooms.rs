//! The admin API's rooms: `GET /_synapse/admin/v1/rooms`, `GET /_synapse/admin/v1/rooms/{roomId}`,
//! `GET /_synapse/admin/v1/rooms/{roomId}/members`, `DELETE /_synapse/admin/v2/rooms/{roomId}`,
//! `GET /_synapse/admin/v2/rooms/{roomId}/delete_status` and
//! `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`.

use serde_json::{json, Map, Value};

use crate::client::rooms::room_id_param;
use crate::context::Ctx;
use crate::durable_objects::room_deletion;
use crate::error::{invalid_param, not_found, Result};
use crate::http::Reply;
use crate::storage::admin_rooms::{self, AdminRoom, ORDERS};
use crate::storage::room_deletions;
use crate::time::now_ms;

const MAX_LIMIT: u64 = 1000;

fn room_json(room: AdminRoom, details: bool) -> Result<Value> {
    let mut value = serde_json::to_value(&room).map_err(|e| crate::error::internal("admin room", e))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("public".into(), (room.public != 0.0).into());
        map.insert("federatable".into(), false.into());
        map.insert("joined_local_members".into(), room.joined_members.into());
        if !details {
            for field in ["topic", "avatar"] {
                map.remove(field);
            }
        }
    }
    Ok(value)
}

/// `from`, `limit`, `order_by`, `dir` (`f` or `b`) and `search_term`, as Synapse's.
pub async fn list_rooms(cx: Ctx) -> Result<Reply> {
    let number = |name: &str, default: u64| -> Result<u64> {
        match cx.req.query(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| invalid_param(format!("{name} must be a non-negative integer"))),
        }
    };
    let from = number("from", 0)?;
    let limit = number("limit", 100)?.min(MAX_LIMIT);
    let order_by = cx.req.query("order_by").unwrap_or("name");
    if !ORDERS.contains(&order_by) {
        return Err(invalid_param(format!("Unknown value for order_by: {order_by}")));
    }
    let forwards = match cx.req.query("dir").unwrap_or("f") {
        "f" => true,
        "b" => false,
        other => return Err(invalid_param(format!("Unknown direction: {other}"))),
    };
    let search = cx.req.query("search_term").filter(|s| !s.is_empty());
    let rooms = admin_rooms::list(&cx.db, search, order_by, forwards, from, limit).await?;
    let total = rooms.first().map_or(0, |r| r.total);
    let count = rooms.len() as u64;
    let mut reply = Map::new();
    reply.insert("offset".into(), from.into());
    reply.insert("total_rooms".into(), total.into());
    if from + count < total {
        reply.insert("next_batch".into(), (from + count).into());
    }
    if from > 0 {
        reply.insert("prev_batch".into(), from.saturating_sub(limit).into());
    }
    let listed = rooms.into_iter().map(|r| room_json(r, false)).collect::<Result<Vec<_>>>()?;
    reply.insert("rooms".into(), listed.into());
    Reply::json(&reply)
}

pub async fn get_room(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let room = admin_rooms::get(&cx.db, room_id.as_str()).await?.ok_or_else(|| not_found("Room not found"))?;
    Reply::json(&room_json(room, true)?)
}

pub async fn get_room_members(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    admin_rooms::get(&cx.db, room_id.as_str()).await?.ok_or_else(|| not_found("Room not found"))?;
    let members = admin_rooms::members(&cx.db, room_id.as_str()).await?;
    Reply::json(&json!({ "total": members.len(), "members": members }))
}

#[derive(serde::Deserialize, Default)]
struct DeleteBody {
    #[serde(default)]
    block: bool,
    purge: Option<bool>,
    #[serde(default)]
    force_purge: bool,
}

/// Deletes a room, as Synapse's shutdown: every joined member leaves, its aliases go, it is
/// blocked if asked, and purged from storage unless `purge` is false (a purged room is blocked
/// too, so its writer never takes an event again). The block is in place before the answer; the
/// rest runs in the background, a batch at a time (`durable_objects/room_deletion.rs`), and the
/// status endpoints report its progress.
pub async fn delete_room(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let body: DeleteBody = cx.req.json_or_empty()?;
    let purge = body.purge.unwrap_or(true);
    let admin = cx.requester()?.user_id.to_string();
    if admin_rooms::get(&cx.db, room_id.as_str()).await?.is_none() {
        return Err(not_found("Room not found"));
    }
    if body.block || purge {
        cx.db.run(room_deletions::block(&cx.db, room_id.as_str(), &admin, now_ms())?).await?;
    }
    let deletion = room_deletion::Deletion {
        delete_id: crate::tokens::new_session_id()?,
        room_id: room_id.to_string(),
        purge,
        force_purge: body.force_purge,
    };
    room_deletion::start(&cx.env, &deletion).await?;
    Reply::json(&json!({ "delete_id": deletion.delete_id }))
}

fn deletion_json(d: room_deletions::Deletion) -> Value {
    let mut value = json!({
        "delete_id": d.delete_id,
        "room_id": d.room_id,
        "status": d.status,
        "shutdown_room": serde_json::from_str::<Value>(&d.result).unwrap_or(Value::Null),
    });
    if let Some(error) = d.error {
        value["error"] = error.into();
    }
    value
}

pub async fn delete_status_by_room(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let results: Vec<Value> =
        room_deletions::of_room(&cx.db, room_id.as_str()).await?.into_iter().map(deletion_json).collect();
    if results.is_empty() {
        return Err(not_found("No delete task for room_id found"));
    }
    Reply::json(&json!({ "results": results }))
}

pub async fn delete_status_by_id(cx: Ctx) -> Result<Reply> {
    let found = room_deletions::get(&cx.db, cx.param("deleteId")).await?;
    Reply::json(&deletion_json(found.ok_or_else(|| not_found("delete id not found"))?))
}
