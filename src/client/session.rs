//! Login and sessions: `GET /login`, `POST /login`, `POST /logout`, `POST /logout/all`,
//! `GET /account/whoami`.

use ruma_common::UserId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth_blocking;
use crate::client::device_lists;
use crate::context::Ctx;
use crate::error::{forbidden, invalid_param, Result};
use crate::error::{ErrorKind, MatrixError};
use crate::http::Reply;
use crate::identifiers::resolve_login_user;
use crate::password;
use crate::ratelimit;
use crate::storage::{access_tokens, devices, pushers, users, Statement};
use crate::time::now_ms;
use crate::tokens::{new_access_token, new_device_id, token_hash};

/// The login (and registration) type of application services, which carry their `as_token`.
pub const APPSERVICE_LOGIN: &str = "m.login.application_service";
const MAX_DEVICE_ID_BYTES: usize = 255;
const MAX_DEVICE_NAME_CHARS: usize = 100;

/// A device that is about to get a new access token.
pub struct NewSession {
    pub device_id: String,
    pub access_token: String,
    /// Creates the device (or revives it), revokes its old tokens and stores the new one.
    pub statements: Vec<Statement>,
}

/// Prepares a log-in of `user_id` on `device_id`, or on a new device. The caller commits the
/// statements, so that the session appears together with whatever else it writes.
pub fn new_session(
    cx: &Ctx,
    user_id: &UserId,
    device_id: Option<String>,
    display_name: Option<&str>,
) -> Result<NewSession> {
    let device_id = match device_id {
        Some(id) => id,
        None => new_device_id()?,
    };
    check_device_fields(&device_id, display_name)?;
    let access_token = new_access_token()?;
    let now = now_ms();
    let db = &cx.db;
    let user = user_id.as_str();
    let statements = vec![
        devices::upsert(db, user, &device_id, display_name, now, cx.req.ip.as_deref())?,
        // The spec: logging in on an existing device invalidates its previous tokens.
        access_tokens::delete_for_device(db, user, &device_id)?,
        access_tokens::insert(db, &token_hash(&access_token), user, &device_id, now)?,
    ];
    Ok(NewSession { device_id, access_token, statements })
}

pub fn check_device_fields(device_id: &str, display_name: Option<&str>) -> Result<()> {
    if device_id.is_empty() || device_id.len() > MAX_DEVICE_ID_BYTES || device_id.chars().any(char::is_control) {
        return Err(invalid_param(format!("device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes of printable text")));
    }
    if display_name.is_some_and(|n| n.chars().count() > MAX_DEVICE_NAME_CHARS) {
        return Err(invalid_param(format!("Device display name is too long (max {MAX_DEVICE_NAME_CHARS})")));
    }
    Ok(())
}

pub async fn get_login_types(_cx: Ctx) -> Result<Reply> {
    Reply::json(&json!({ "flows": [{ "type": "m.login.password" }, { "type": APPSERVICE_LOGIN }] }))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    identifier: Option<Value>,
    user: Option<Value>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
}

pub async fn login(cx: Ctx) -> Result<Reply> {
    let now = now_ms();
    let mut body: LoginBody = cx.req.json()?;
    if body.kind == APPSERVICE_LOGIN {
        return login_for_service(cx, body, now).await;
    }
    ratelimit::check(&cx.db, cx.config.rc_login, "login", cx.req.client_address(), now).await?;
    if body.kind != "m.login.password" {
        return Err(MatrixError::new(ErrorKind::Unknown, format!("Unknown login type {:?}", body.kind)).into());
    }
    let password =
        body.password.take().ok_or_else(|| MatrixError::new(ErrorKind::MissingParam, "password is required"))?;
    let wrong = || forbidden("Invalid username or password");
    let user_id =
        resolve_login_user(body.identifier.as_ref(), body.user.as_ref(), &cx.config.server_name)?.ok_or_else(wrong)?;
    ratelimit::check(&cx.db, cx.config.rc_login, "login-account", user_id.as_str(), now).await?;
    let user = users::get(&cx.db, user_id.as_str()).await?.ok_or_else(wrong)?;
    // The password first: that an account is deactivated is for its owner to learn. (Deactivation
    // erases the password, so to anyone a deactivated account answers like a wrong password.)
    match &user.password_hash {
        Some(hash) if password::verify(&password, hash) => {}
        _ => return Err(wrong()),
    }
    if user.is_deactivated() {
        return Err(MatrixError::new(ErrorKind::UserDeactivated, "This account has been deactivated").into());
    }
    auth_blocking::check_user(&cx.db, &cx.config, &user_id).await?;
    complete_login(cx, &user_id, body).await
}

/// A service logs in as its sender or a user of its namespace, with its `as_token`.
async fn login_for_service(cx: Ctx, body: LoginBody, now: u64) -> Result<Reply> {
    let (_, service) = cx.appservice()?;
    if service.registration.rate_limited {
        ratelimit::check(&cx.db, cx.config.rc_login, "login", cx.req.client_address(), now).await?;
    }
    let invalid = || forbidden("Invalid user for this application service");
    let user_id = resolve_login_user(body.identifier.as_ref(), body.user.as_ref(), &cx.config.server_name)?
        .ok_or_else(invalid)?;
    if !service.is_interested_in_user(user_id.as_str()) {
        return Err(invalid());
    }
    let user = users::get(&cx.db, user_id.as_str()).await?.ok_or_else(invalid)?;
    if user.is_deactivated() {
        return Err(MatrixError::new(ErrorKind::UserDeactivated, "This account has been deactivated").into());
    }
    // A service's users are limited only when they count (as Synapse's `is_appservice_ghost`).
    if cx.config.track_appservice_user_ips {
        auth_blocking::check_user(&cx.db, &cx.config, &user_id).await?;
    }
    complete_login(cx, &user_id, body).await
}

async fn complete_login(cx: Ctx, user_id: &UserId, body: LoginBody) -> Result<Reply> {
    let session = new_session(&cx, user_id, body.device_id, body.initial_device_display_name.as_deref())?;
    cx.db.batch(session.statements).await?;
    device_lists::announce(&cx, user_id.as_str()).await?;
    Reply::json(&json!({
        "user_id": user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": cx.config.server_name,
        "well_known": { "m.homeserver": { "base_url": cx.base_url() } },
    }))
}

/// Ends the session: the token, its device and the device's pushers go.
pub async fn logout(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester()?;
    let user = requester.user_id.as_str();
    cx.db
        .batch(vec![
            access_tokens::delete_for_device(&cx.db, user, &requester.device_id)?,
            pushers::delete_for_device(&cx.db, user, &requester.device_id)?,
            devices::delete(&cx.db, user, &requester.device_id)?,
        ])
        .await?;
    device_lists::announce(&cx, user).await?;
    Ok(Reply::empty())
}

/// Ends every session of the user, and removes every pusher.
pub async fn logout_all(cx: Ctx) -> Result<Reply> {
    let user = cx.requester()?.user_id.as_str();
    cx.db
        .batch(vec![
            access_tokens::delete_all(&cx.db, user)?,
            pushers::delete_all(&cx.db, user)?,
            devices::delete_all(&cx.db, user)?,
        ])
        .await?;
    device_lists::announce(&cx, user).await?;
    Ok(Reply::empty())
}

pub async fn whoami(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester()?;
    let mut reply = json!({ "user_id": requester.user_id, "is_guest": requester.is_guest });
    // A service acting without a device has none to name.
    if !requester.device_id.is_empty() {
        reply["device_id"] = requester.device_id.clone().into();
    }
    Reply::json(&reply)
}
