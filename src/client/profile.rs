//! Profiles: `GET /profile/{userId}`, and `GET`, `PUT` and `DELETE /profile/{userId}/{keyName}`
//! for `displayname`, `avatar_url`, `m.tz` and custom fields. A new name or avatar reaches the
//! user's joined rooms as new member events.

use ruma_common::UserId;
use serde_json::{Map, Value};

use crate::appservice::query::{self, Kind};
use crate::context::Ctx;
use crate::durable_objects::deactivation;
use crate::error::{bad_json, forbidden, invalid_param, missing_param, not_found, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::storage::{current_state, profiles, users};

/// The spec's bound on a whole profile.
const MAX_PROFILE_BYTES: u64 = 64 * 1024;
const MAX_KEY_BYTES: usize = 255;
/// Synapse's bounds on the two classic fields.
const MAX_DISPLAYNAME_CHARS: usize = 256;
const MAX_AVATAR_URL_CHARS: usize = 1000;

/// A local user whose profile may be read; 404 for a malformed, unknown or deactivated ID.
async fn existing_user(cx: &Ctx) -> Result<String> {
    let user_id = <&UserId>::try_from(cx.param("userId")).map_err(|_| not_found("Profile not found"))?;
    // A deactivated user's profile is gone; an unknown one in a service's namespace is asked for.
    let local = user_id.server_name() == cx.config.server_name;
    let known = local
        && match users::get(&cx.db, user_id.as_str()).await? {
            Some(user) => !user.is_deactivated(),
            None => user_exists(cx, user_id.as_str()).await?,
        };
    if !known {
        return Err(not_found("Profile not found"));
    }
    Ok(user_id.to_string())
}

/// Whether a local user exists, once an application service whose namespace holds it was asked.
pub async fn user_exists(cx: &Ctx, user_id: &str) -> Result<bool> {
    let server_name = cx.config.server_name.as_str();
    Ok(users::exists(&cx.db, user_id).await?
        || (query::ask(&cx.db, server_name, Kind::User, user_id).await? && users::exists(&cx.db, user_id).await?))
}

pub async fn get_profile(cx: Ctx) -> Result<Reply> {
    let user_id = existing_user(&cx).await?;
    let mut profile = Map::new();
    for field in profiles::all(&cx.db, &user_id).await? {
        profile.insert(field.field, stored_value(&field.value)?);
    }
    Reply::json(&profile)
}

pub async fn get_profile_field(cx: Ctx) -> Result<Reply> {
    let user_id = existing_user(&cx).await?;
    let key = cx.param("keyName");
    let mut reply = Map::new();
    match profiles::get(&cx.db, &user_id, key).await? {
        Some(field) => {
            reply.insert(field.field, stored_value(&field.value)?);
        }
        // An unset name or avatar of an existing user is an empty object, as Synapse answers;
        // an unset custom field is not found.
        None if is_member_field(key) => {}
        None => return Err(not_found("Profile field not found")),
    }
    Reply::json(&reply)
}

pub async fn set_profile_field(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester_as_path_user()?;
    let key = cx.param("keyName");
    check_key(key, requester.is_guest)?;
    let mut body: Map<String, Value> = cx.req.json()?;
    let value = body.remove(key).ok_or_else(|| missing_param(format!("The body must have the property {key:?}")))?;
    let user = requester.user_id.as_str();
    // Setting a classic field to "" clears it, as clients have long done.
    if is_member_field(key) && value == "" {
        cx.db.run(profiles::delete(&cx.db, user, key)?).await?;
        update_rooms(&cx, user, key).await;
        return Ok(Reply::empty());
    }
    check_value(key, &value)?;
    let json = value.to_string();
    let size = profiles::size_without(&cx.db, user, key).await? + (key.len() + json.len()) as u64;
    if size > MAX_PROFILE_BYTES {
        return Err(MatrixError::new(ErrorKind::ProfileTooLarge, "The profile would exceed 64 KiB").into());
    }
    cx.db.run(profiles::set(&cx.db, user, key, &json)?).await?;
    update_rooms(&cx, user, key).await;
    Ok(Reply::empty())
}

pub async fn delete_profile_field(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester_as_path_user()?;
    let key = cx.param("keyName");
    check_key(key, requester.is_guest)?;
    let user = requester.user_id.as_str();
    cx.db.run(profiles::delete(&cx.db, user, key)?).await?;
    update_rooms(&cx, user, key).await;
    Ok(Reply::empty())
}

/// The fields that member events carry.
fn is_member_field(key: &str) -> bool {
    matches!(key, "displayname" | "avatar_url")
}

/// After a change of name or avatar, the user's joined rooms get a new member event, as in
/// Synapse: in the background, a batch of rooms at a time (see [`deactivation`]). The profile is
/// saved either way; a failure here only leaves the rooms behind.
async fn update_rooms(cx: &Ctx, user: &str, key: &str) {
    if !is_member_field(key) {
        return;
    }
    let handed_over = async {
        let rooms = current_state::rooms_with_membership(&cx.db, user, "join").await?;
        deactivation::update_profile(&cx.env, user, rooms).await
    };
    if let Err(e) = handed_over.await {
        crate::log::error(&format!("profile of {user}: the rooms were not updated: {e:?}"));
    }
}

/// The key must be a known field or a namespaced custom one; guests may touch only their name.
fn check_key(key: &str, is_guest: bool) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(MatrixError::new(ErrorKind::KeyTooLarge, "Profile keys may be at most 255 bytes").into());
    }
    if !matches!(key, "displayname" | "avatar_url" | "m.tz") && !is_namespaced(key) {
        return Err(invalid_param("Invalid profile key"));
    }
    if is_guest && key != "displayname" {
        return Err(forbidden("Guests may only change their display name"));
    }
    Ok(())
}

/// `[a-z][a-z0-9_]*` segments joined by dots, at least two of them.
fn is_namespaced(key: &str) -> bool {
    let segments: Vec<&str> = key.split('.').collect();
    segments.len() >= 2
        && segments.iter().all(|s| {
            let mut chars = s.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

fn check_value(key: &str, value: &Value) -> Result<()> {
    match (key, value) {
        ("displayname", Value::String(s)) if s.chars().count() <= MAX_DISPLAYNAME_CHARS => Ok(()),
        ("displayname", Value::String(_)) => {
            Err(invalid_param(format!("displayname is longer than {MAX_DISPLAYNAME_CHARS} characters")))
        }
        ("displayname", _) => Err(bad_json("displayname must be a string")),
        ("avatar_url", Value::String(s))
            if crate::media::is_valid_mxc(s) && s.chars().count() <= MAX_AVATAR_URL_CHARS =>
        {
            Ok(())
        }
        ("avatar_url", _) => Err(bad_json("avatar_url must be an mxc://<server-name>/<media-id> URI")),
        ("m.tz", Value::String(_)) => Ok(()),
        ("m.tz", _) => Err(bad_json("m.tz must be a string")),
        _ => Ok(()),
    }
}

fn stored_value(json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(|e| crate::error::internal("stored profile value", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_keys() {
        for ok in ["displayname", "avatar_url", "m.tz", "org.example.field", "a.b_2"] {
            assert!(check_key(ok, false).is_ok(), "{ok}");
        }
        for bad in ["", "custom", "Org.example", "org..example", "org.1x", "org.example-x"] {
            assert!(check_key(bad, false).is_err(), "{bad}");
        }
        let long = format!("org.{}", "a".repeat(252));
        assert_eq!(check_key(&long, false).unwrap_err().matrix().unwrap().kind, ErrorKind::KeyTooLarge);
        assert!(check_key("displayname", true).is_ok());
        assert!(check_key("avatar_url", true).is_err());
    }

    #[test]
    fn profile_values() {
        assert!(check_value("displayname", &Value::from("Alice")).is_ok());
        assert!(check_value("displayname", &Value::from(5)).is_err());
        assert!(check_value("displayname", &Value::from("x".repeat(257))).is_err());
        assert!(check_value("avatar_url", &Value::from("mxc://a/b")).is_ok());
        assert!(check_value("avatar_url", &Value::from("https://a/b")).is_err());
        assert!(check_value("avatar_url", &Value::from("mxc://a/../etc")).is_err());
        assert!(check_value("org.example.any", &serde_json::json!({"nested": [1]})).is_ok());
    }
}
