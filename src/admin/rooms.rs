//! The admin API's rooms: `GET /_synapse/admin/v1/rooms`, `GET /_synapse/admin/v1/rooms/{roomId}`
//! and `GET /_synapse/admin/v1/rooms/{roomId}/members`.

use serde_json::{json, Map, Value};

use crate::client::rooms::room_id_param;
use crate::error::{invalid_param, not_found, Result};
use crate::http::Reply;
use crate::router::Ctx;
use crate::storage::admin_rooms::{self, AdminRoom, ORDERS};

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
