//! Account data: `GET` and `PUT /user/{userId}/account_data/{type}` and
//! `GET` and `PUT /user/{userId}/rooms/{roomId}/account_data/{type}`.
//!
//! Room account data may name any well-formed room ID, as the spec requires no membership: a
//! user may keep data about a room they left or have not joined yet.

use serde_json::{Map, Value};

use crate::client::rooms::room_id_param;
use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{internal, invalid_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::storage::account_data::{self, GLOBAL};

/// The largest content of one entry, as JSON text.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Event types are at most 255 bytes in events; account data types follow them.
const MAX_TYPE_BYTES: usize = 255;
/// Types the server manages: clients read them here but set them elsewhere.
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

pub async fn get_account_data(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    read(&cx, &user_id, GLOBAL).await
}

pub async fn set_account_data(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    write(&cx, &user_id, GLOBAL).await
}

pub async fn get_room_account_data(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    read(&cx, &user_id, room_id.as_str()).await
}

pub async fn set_room_account_data(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    write(&cx, &user_id, room_id.as_str()).await
}

async fn read(cx: &Ctx, user_id: &str, room_id: &str) -> Result<Reply> {
    let kind = cx.param("type");
    check_type(kind)?;
    let entry = account_data::get(&cx.db, user_id, room_id, kind)
        .await?
        .ok_or_else(|| not_found("No account data of this type"))?;
    Reply::json(&stored_content(&entry.content)?)
}

async fn write(cx: &Ctx, user_id: &str, room_id: &str) -> Result<Reply> {
    let kind = cx.param("type");
    check_type(kind)?;
    if SERVER_MANAGED.contains(&kind) {
        return Err(MatrixError::new(ErrorKind::NotSettable, format!("Cannot set {kind} through this API")).into());
    }
    let content: Map<String, Value> = cx.req.json()?;
    let json = content_json(&content)?;
    cx.db.run(account_data::set(&cx.db, user_id, room_id, kind, &json)?).await?;
    wake_syncs(cx, user_id).await?;
    Ok(Reply::empty())
}

/// The type must be one an event could have: at most 255 bytes.
pub fn check_type(kind: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > MAX_TYPE_BYTES {
        return Err(invalid_param(format!("Account data types are 1 to {MAX_TYPE_BYTES} bytes")));
    }
    Ok(())
}

/// Content as stored: compact JSON, at most [`MAX_CONTENT_BYTES`].
pub fn content_json(content: &Map<String, Value>) -> Result<String> {
    let json = serde_json::to_string(content).map_err(|e| internal("serializing account data", e))?;
    if json.len() > MAX_CONTENT_BYTES {
        return Err(MatrixError::new(
            ErrorKind::TooLarge,
            format!("Account data may be at most {MAX_CONTENT_BYTES} bytes"),
        )
        .into());
    }
    Ok(json)
}

pub fn stored_content(json: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(json).map_err(|e| internal("stored account data", e))
}

/// Wakes the user's waiting syncs for a change of their account data.
pub async fn wake_syncs(cx: &Ctx, user_id: &str) -> Result<()> {
    let positions = Positions { account_data: account_data::max_stream_id(&cx.db).await?, ..Positions::default() };
    user_sync::notify(&cx.env, user_id, positions).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_sizes() {
        assert!(check_type("org.example.config").is_ok());
        assert!(check_type(&"a".repeat(255)).is_ok());
        assert!(check_type(&"a".repeat(256)).is_err());
        assert!(check_type("").is_err());
        let mut content = Map::new();
        content.insert("k".into(), Value::from("v".repeat(MAX_CONTENT_BYTES - 10)));
        assert!(content_json(&content).is_ok());
        content.insert("k".into(), Value::from("v".repeat(MAX_CONTENT_BYTES)));
        let err = content_json(&content).unwrap_err();
        assert_eq!(err.matrix().unwrap().kind, ErrorKind::TooLarge);
    }
}
