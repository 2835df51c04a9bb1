//! The admin API's users: `GET /_synapse/admin/v2/users`, `GET` and `PUT
//! /_synapse/admin/v2/users/{userId}`, `POST /_synapse/admin/v1/deactivate/{userId}`,
//! `POST /_synapse/admin/v1/reset_password/{userId}`, `GET /_synapse/admin/v1/whois/{userId}` and
//! `POST /_synapse/admin/v1/users/{userId}/login` (puppeting).

use std::collections::BTreeMap;

use ruma_common::UserId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{local_path_user, user_not_found};
use crate::auth_blocking::{self, is_reserved};
use crate::client::account::deactivate_user;
use crate::client::device_lists;
use crate::context::Ctx;
use crate::error::{invalid_param, missing_param, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::password;
use crate::storage::{
    access_tokens, devices, erased_users, monthly_active_users, profiles, pushers, user_ips, user_threepids, users, Db,
    Statement,
};
use crate::time::now_ms;
use crate::tokens::{new_access_token, token_hash};

const USER_TYPES: &[&str] = &["support", "bot"];
const MAX_PASSWORD_BYTES: usize = 512;

/// A user as the admin API shows it (Synapse's `UserInfo`, in its JSON names).
async fn user_json(db: &Db, user: &users::User, full: bool) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    out.insert("name".into(), user.user_id.clone().into());
    for (name, value) in [("displayname", &user.displayname), ("avatar_url", &user.avatar_url)] {
        let value = value.as_deref().and_then(|v| serde_json::from_str(v).ok());
        out.insert(name.into(), value.unwrap_or(Value::Null));
    }
    out.insert("is_guest".into(), user.is_guest().into());
    out.insert("admin".into(), user.is_admin().into());
    out.insert("deactivated".into(), user.is_deactivated().into());
    out.insert("erased".into(), (user.erased != 0.0).into());
    out.insert("shadow_banned".into(), false.into());
    out.insert("locked".into(), false.into());
    out.insert("approved".into(), true.into());
    out.insert("creation_ts".into(), ((user.created_ms / 1000.0) as u64).into());
    out.insert("appservice_id".into(), user.appservice_id.clone().into());
    out.insert("user_type".into(), user.user_type.clone().into());
    if full {
        let threepids: Vec<Value> = user_threepids::of_user(db, &user.user_id)
            .await?
            .into_iter()
            .map(|t| {
                json!({
                    "medium": t.medium,
                    "address": t.address,
                    "added_at": t.added_ms as u64,
                    "validated_at": t.validated_ms as u64,
                })
            })
            .collect();
        out.insert("threepids".into(), threepids.into());
        out.insert("external_ids".into(), json!([]));
    }
    Ok(out)
}

fn flag(cx: &Ctx, name: &str) -> Result<Option<bool>> {
    match cx.req.query(name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(invalid_param(format!("{name} must be true or false, not {other:?}"))),
    }
}

fn whole(cx: &Ctx, name: &str, default: u64) -> Result<u64> {
    match cx.req.query(name) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| invalid_param(format!("Query parameter {name:?} must be a non-negative integer")))
        }
    }
}

/// `GET /_synapse/admin/v2/users`: `from`, `limit`, `name` (localpart or display name) or
/// `user_id`, `guests`, `deactivated`, `admins`; ordered by user ID.
pub async fn list_users(cx: Ctx) -> Result<Reply> {
    let from = whole(&cx, "from", 0)?;
    let limit = whole(&cx, "limit", 100)?;
    let filter = users::ListFilter {
        name: cx.req.query("name").filter(|n| !n.is_empty()),
        user_id: cx.req.query("user_id").filter(|n| !n.is_empty()),
        guests: flag(&cx, "guests")?.unwrap_or(true),
        deactivated: flag(&cx, "deactivated")?.unwrap_or(false),
        admins: flag(&cx, "admins")?,
    };
    let (page, total) = users::list(&cx.db, &filter, from, limit).await?;
    let mut listed = Vec::with_capacity(page.len());
    for user in &page {
        listed.push(Value::Object(user_json(&cx.db, user, false).await?));
    }
    let mut reply = json!({ "users": listed, "total": total });
    if from + (page.len() as u64) < total {
        reply["next_token"] = (from + page.len() as u64).to_string().into();
    }
    Reply::json(&reply)
}

/// `GET /_synapse/admin/v2/users/{userId}`.
pub async fn get_user(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    let user = users::get_for_admin(&cx.db, user_id.as_str()).await?.ok_or_else(user_not_found)?;
    Reply::json(&user_json(&cx.db, &user, true).await?)
}

#[derive(Deserialize)]
struct Threepid {
    medium: String,
    address: String,
}

#[derive(Deserialize)]
struct PutUserBody {
    password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
    displayname: Option<String>,
    avatar_url: Option<String>,
    threepids: Option<Vec<Threepid>>,
    admin: Option<bool>,
    deactivated: Option<bool>,
    /// Absent: unchanged; `null`: a regular user.
    #[serde(default, deserialize_with = "some_or_null")]
    user_type: Option<Option<String>>,
}

fn yes() -> bool {
    true
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT /_synapse/admin/v2/users/{userId}`: creates the user (201), or changes it (200).
pub async fn put_user(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    let body: PutUserBody = cx.req.json()?;
    let admin = cx.requester()?.user_id.clone();
    if let Some(Some(t)) = &body.user_type {
        if !USER_TYPES.contains(&t.as_str()) {
            return Err(invalid_param("Invalid user type"));
        }
    }
    if body.password.as_ref().is_some_and(|p| p.is_empty() || p.len() > MAX_PASSWORD_BYTES) {
        return Err(invalid_param("Invalid password"));
    }
    if user_id == admin && body.admin == Some(false) {
        return Err(invalid_param("You may not demote yourself."));
    }
    if user_id == admin && body.deactivated == Some(true) {
        return Err(invalid_param("You may not deactivate yourself."));
    }
    let now = now_ms();
    let db = &cx.db;
    let user = user_id.as_str();
    let existing = users::get(db, user).await?;
    let hash = match &body.password {
        Some(p) => Some(password::hash(p, cx.config.password_cost)?),
        None => None,
    };
    let mut statements: Vec<Statement> = Vec::new();
    let created = existing.is_none();
    let new_type = body.user_type.clone().flatten();
    match &existing {
        None => {
            let kind = users::NewUser {
                admin: body.admin.unwrap_or(false),
                user_type: new_type.as_deref(),
                ..Default::default()
            };
            statements.push(users::insert(db, user, hash.as_deref(), &kind, now)?);
            let name = body.displayname.clone().unwrap_or_else(|| user_id.localpart().to_owned());
            statements.push(profiles::set(db, user, "displayname", &Value::from(name).to_string())?);
        }
        Some(existing) => {
            if let Some(admin) = body.admin {
                statements.push(users::set_admin(db, user, admin)?);
            }
            if let Some(user_type) = &body.user_type {
                statements.push(users::set_user_type(db, user, user_type.as_deref())?);
            }
            if let Some(hash) = &hash {
                statements.push(users::set_password(db, user, hash)?);
                if body.logout_devices {
                    statements.extend(logout_all(db, user)?);
                }
            }
            if let Some(name) = &body.displayname {
                statements.push(profiles::set(db, user, "displayname", &Value::from(name.as_str()).to_string())?);
            }
            if body.deactivated == Some(false) && existing.is_deactivated() {
                if hash.is_none() {
                    return Err(MatrixError::new(
                        ErrorKind::Forbidden,
                        "Must provide a password to re-activate an account.",
                    )
                    .into());
                }
                statements.push(users::reactivate(db, user)?);
            }
        }
    }
    if let Some(url) = &body.avatar_url {
        statements.push(profiles::set(db, user, "avatar_url", &Value::from(url.as_str()).to_string())?);
    }
    if let Some(threepids) = &body.threepids {
        statements.push(user_threepids::delete_all(db, user)?);
        for t in threepids {
            if user_threepids::owner(db, &t.medium, &t.address).await?.is_some_and(|o| o != user) {
                return Err(MatrixError::new(ErrorKind::Conflict, format!("{} is already in use", t.address)).into());
            }
            statements.push(user_threepids::insert(db, user, &t.medium, &t.address, now)?);
            // A reserved third-party ID makes its holder active at once (Synapse waits for a restart).
            if cx.config.mau.enabled && is_reserved(&cx.config, &t.medium, &t.address) {
                statements.push(monthly_active_users::insert_reserved(db, user, now)?);
            }
        }
    }
    if cx.db.try_batch(statements).await?.is_none() {
        return Err(MatrixError::new(ErrorKind::Conflict, "The user or a third-party ID was taken meanwhile").into());
    }
    if body.deactivated == Some(true) && existing.as_ref().is_some_and(|u| !u.is_deactivated()) {
        deactivate_user(&cx, user, false).await?;
    } else if existing.is_some() && hash.is_some() && body.logout_devices {
        device_lists::announce(&cx, user).await?;
    }
    let stored = users::get_for_admin(db, user).await?.ok_or_else(user_not_found)?;
    let mut reply = Reply::json(&user_json(db, &stored, true).await?)?;
    if created {
        reply.status = 201;
    }
    Ok(reply)
}

fn logout_all(db: &Db, user: &str) -> Result<Vec<Statement>> {
    Ok(vec![access_tokens::delete_all(db, user)?, pushers::delete_all(db, user)?, devices::delete_all(db, user)?])
}

#[derive(Deserialize, Default)]
struct DeactivateBody {
    #[serde(default)]
    erase: bool,
}

/// `POST /_synapse/admin/v1/deactivate/{userId}`: as the user's own deactivation, `erase`
/// included; an account deactivated before may still be erased.
pub async fn deactivate(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    let body: DeactivateBody = cx.req.json_or_empty()?;
    let user = users::get(&cx.db, user_id.as_str()).await?.ok_or_else(user_not_found)?;
    if !user.is_deactivated() {
        deactivate_user(&cx, user_id.as_str(), body.erase).await?;
    } else if body.erase {
        cx.db.run(erased_users::insert(&cx.db, user_id.as_str())?).await?;
    }
    Reply::json(&json!({ "id_server_unbind_result": "success" }))
}

#[derive(Deserialize)]
struct ResetPasswordBody {
    new_password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
}

/// `POST /_synapse/admin/v1/reset_password/{userId}`.
pub async fn reset_password(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    let body: ResetPasswordBody = cx.req.json()?;
    let new_password = body.new_password.ok_or_else(|| missing_param("new_password is required"))?;
    if new_password.is_empty() || new_password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid_param("Invalid password"));
    }
    let user = users::get(&cx.db, user_id.as_str()).await?.ok_or_else(user_not_found)?;
    if user.is_deactivated() {
        return Err(user_not_found());
    }
    let hash = password::hash(&new_password, cx.config.password_cost)?;
    let mut statements = vec![users::set_password(&cx.db, user_id.as_str(), &hash)?];
    if body.logout_devices {
        statements.extend(logout_all(&cx.db, user_id.as_str())?);
    }
    cx.db.batch(statements).await?;
    if body.logout_devices {
        device_lists::announce(&cx, user_id.as_str()).await?;
    }
    Ok(Reply::empty())
}

/// `GET /_synapse/admin/v1/whois/{userId}`: each device's connections (address, user agent and
/// when last seen).
pub async fn whois(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    users::get(&cx.db, user_id.as_str()).await?.ok_or_else(user_not_found)?;
    let mut devices: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in user_ips::of_user(&cx.db, user_id.as_str()).await? {
        let connection = json!({ "ip": c.ip, "last_seen": c.last_seen_ms as u64, "user_agent": c.user_agent });
        devices.entry(c.device_id).or_default().push(connection);
    }
    let devices: Map<String, Value> = devices
        .into_iter()
        .map(|(device, connections)| (device, json!({ "sessions": [{ "connections": connections }] })))
        .collect();
    Reply::json(&json!({ "user_id": user_id, "devices": devices }))
}

#[derive(Deserialize)]
struct PuppetBody {
    valid_until_ms: Option<u64>,
}

/// `POST /_synapse/admin/v1/users/{userId}/login`: a token that acts as the user for the admin,
/// without a device. Its use is the admin's activity, not the user's (unless
/// `TRACK_PUPPETED_USER_IPS`), so a blocked user can be puppeted.
pub async fn puppet_login(cx: Ctx) -> Result<Reply> {
    let user_id = local_path_user(&cx)?;
    let body: PuppetBody = cx.req.json_or_empty()?;
    let requester = cx.requester()?;
    if user_id == requester.user_id {
        return Err(invalid_param("Cannot use admin API to login as self"));
    }
    let now = now_ms();
    if body.valid_until_ms.is_some_and(|t| t < now) {
        return Err(invalid_param("'valid_until_ms' is in the past"));
    }
    let user = users::get(&cx.db, user_id.as_str()).await?.ok_or_else(user_not_found)?;
    if user.is_deactivated() {
        return Err(user_not_found());
    }
    // As Synapse: the new token is the admin's, so the admin's standing decides.
    auth_blocking::check_requester(&cx.db, &cx.config, requester).await?;
    let token = new_access_token()?;
    let admin: &UserId = requester.entity();
    let insert = access_tokens::insert_puppet(
        &cx.db,
        &token_hash(&token),
        user_id.as_str(),
        admin.as_str(),
        now,
        body.valid_until_ms,
    )?;
    cx.db.run(insert).await?;
    Reply::json(&json!({ "access_token": token }))
}
