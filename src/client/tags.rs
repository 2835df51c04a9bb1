//! Room tags: `GET /user/{userId}/rooms/{roomId}/tags` and `PUT` and
//! `DELETE /user/{userId}/rooms/{roomId}/tags/{tag}`. The tags of a room are its `m.tag` room
//! account data, `{"tags": {name: {order?}}}`, so `/sync` serves them with the rest.

use serde_json::{Map, Value};

use crate::client::account_data::{content_json, stored_content};
use crate::client::rooms::room_id_param;
use crate::context::Ctx;
use crate::error::{bad_json, internal, invalid_param, Result};
use crate::http::Reply;
use crate::storage::account_data;

const TAG_TYPE: &str = "m.tag";
/// The spec's bound on a tag name.
const MAX_TAG_BYTES: usize = 255;
/// Concurrent tag changes on one room retry their read-modify-write this many times.
const ATTEMPTS: usize = 8;

pub async fn get_room_tags(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    let tags = match account_data::get(&cx.db, &user_id, room_id.as_str(), TAG_TYPE).await? {
        Some(entry) => tags_of(stored_content(&entry.content)?),
        None => Map::new(),
    };
    Reply::json(&serde_json::json!({ "tags": tags }))
}

pub async fn set_room_tag(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    let tag = cx.param("tag").to_owned();
    check_tag(&tag)?;
    let body: Map<String, Value> = cx.req.json()?;
    check_tag_body(&body)?;
    update(&cx, &user_id, room_id.as_str(), |tags| {
        tags.insert(tag.clone(), Value::Object(body.clone()));
    })
    .await
}

pub async fn delete_room_tag(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    let tag = cx.param("tag").to_owned();
    check_tag(&tag)?;
    update(&cx, &user_id, room_id.as_str(), |tags| {
        tags.remove(&tag);
    })
    .await
}

/// Changes the room's tags with a compare-and-set on the `m.tag` entry, so that two devices
/// tagging the same room at once both take effect.
async fn update(cx: &Ctx, user_id: &str, room_id: &str, change: impl Fn(&mut Map<String, Value>)) -> Result<Reply> {
    for _ in 0..ATTEMPTS {
        let entry = account_data::get(&cx.db, user_id, room_id, TAG_TYPE).await?;
        let (stream_id, mut content) = match entry {
            Some(entry) => (entry.stream_id, stored_content(&entry.content)?),
            None => (0, Map::new()),
        };
        let mut tags = tags_of(content.clone());
        let before = tags.clone();
        change(&mut tags);
        // A change that changes nothing (deleting an absent tag) writes nothing, so `/sync`
        // does not see a new `m.tag` event for it.
        if before == tags {
            return Ok(Reply::empty());
        }
        content.insert("tags".into(), Value::Object(tags));
        let json = content_json(&content)?;
        let written = cx.db.run(account_data::set_if_at(&cx.db, user_id, room_id, TAG_TYPE, &json, stream_id)?).await?;
        if written > 0 {
            super::account_data::wake_syncs(cx, user_id).await?;
            return Ok(Reply::empty());
        }
    }
    Err(internal("tags", "too many concurrent changes to one room's tags"))
}

/// The `tags` object of `m.tag` content; anything else there reads as no tags.
fn tags_of(mut content: Map<String, Value>) -> Map<String, Value> {
    match content.remove("tags") {
        Some(Value::Object(tags)) => tags,
        _ => Map::new(),
    }
}

fn check_tag(tag: &str) -> Result<()> {
    if tag.len() > MAX_TAG_BYTES {
        return Err(invalid_param(format!("Tag names may be at most {MAX_TAG_BYTES} bytes")));
    }
    Ok(())
}

/// The spec's `Tag`: an object whose `order`, if given, is a number in [0, 1].
fn check_tag_body(body: &Map<String, Value>) -> Result<()> {
    match body.get("order") {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|o| (0.0..=1.0).contains(&o)) => Ok(()),
        Some(_) => Err(bad_json("order must be a number from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn tag_bodies() {
        for ok in [json!({}), json!({"order": 0}), json!({"order": 1}), json!({"order": 0.25}), json!({"x": 1})] {
            assert!(check_tag_body(&obj(ok.clone())).is_ok(), "{ok}");
        }
        for bad in [json!({"order": -0.1}), json!({"order": 1.5}), json!({"order": "0.5"}), json!({"order": null})] {
            assert!(check_tag_body(&obj(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_names_and_content() {
        assert!(check_tag("u.work").is_ok());
        assert!(check_tag(&"é".repeat(127)).is_ok());
        assert!(check_tag(&"é".repeat(128)).is_err());
        assert_eq!(tags_of(obj(json!({"tags": {"a": {}}}))), obj(json!({"a": {}})));
        assert!(tags_of(obj(json!({"tags": []}))).is_empty());
        assert!(tags_of(obj(json!({}))).is_empty());
    }
}
