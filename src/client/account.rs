//! Account management: `POST /account/password` and `POST /account/deactivate`.

use serde::Deserialize;
use serde_json::json;

use crate::client::device_lists;
use crate::context::Ctx;
use crate::durable_objects::deactivation;
use crate::error::{invalid_param, missing_param, Result};
use crate::http::Reply;
use crate::password;
use crate::storage::{
    access_tokens, current_state, devices, erased_users, monthly_active_users, profiles, pushers, user_threepids, users,
};
use crate::uia::{self, AuthData, Flows};

const FLOWS: Flows = &[&[uia::PASSWORD]];
const MAX_PASSWORD_BYTES: usize = 512;

#[derive(Deserialize)]
struct ChangePasswordBody {
    auth: Option<AuthData>,
    new_password: Option<String>,
    logout_devices: Option<bool>,
}

pub async fn change_password(cx: Ctx) -> Result<Reply> {
    let body: ChangePasswordBody = cx.req.json()?;
    if body.new_password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_BYTES) {
        return Err(invalid_param(format!("Password may not be longer than {MAX_PASSWORD_BYTES} bytes")));
    }
    let requester = cx.requester()?;
    uia::authenticate(&cx, body.auth, FLOWS, Some(&requester.user_id)).await?;
    let new_password = body.new_password.ok_or_else(|| missing_param("new_password is required"))?;
    let user = requester.user_id.as_str();
    let mut statements =
        vec![users::set_password(&cx.db, user, &password::hash(&new_password, cx.config.password_cost)?)?];
    let logout_devices = body.logout_devices.unwrap_or(true);
    if logout_devices {
        statements.push(access_tokens::delete_all_but(&cx.db, user, &requester.device_id)?);
        statements.push(pushers::delete_all_but(&cx.db, user, &requester.device_id)?);
        statements.push(devices::delete_all_but(&cx.db, user, &requester.device_id)?);
    }
    cx.db.batch(statements).await?;
    if logout_devices {
        device_lists::announce(&cx, user).await?;
    }
    Ok(Reply::empty())
}

#[derive(Deserialize)]
struct DeactivateBody {
    auth: Option<AuthData>,
    /// Erase: the user's events are served redacted to whoever was not in the room for them.
    #[serde(default)]
    erase: bool,
    #[serde(rename = "id_server")]
    _id_server: Option<String>,
}

/// Deactivation is permanent: the password, every session and pusher, and the profile go; the
/// ID stays taken. The user leaves every room it is joined to, invited to or knocking on, as in
/// Synapse: in the background, a batch at a time (see [`deactivation`]), as one request could not
/// send them all.
pub async fn deactivate(cx: Ctx) -> Result<Reply> {
    let body: DeactivateBody = cx.req.json()?;
    let requester = cx.requester()?;
    uia::authenticate(&cx, body.auth, FLOWS, Some(&requester.user_id)).await?;
    deactivate_user(&cx, requester.user_id.as_str(), body.erase).await?;
    Reply::json(&json!({ "id_server_unbind_result": "no-support" }))
}

/// Deactivates an account, for itself or for an admin; `erase` also marks it erased (Synapse's
/// `erase_data`: the profile goes, which deactivation does here anyway, and its events are served
/// redacted to readers who were not in the room when they were sent).
pub async fn deactivate_user(cx: &Ctx, user: &str, erase: bool) -> Result<()> {
    let mut statements = vec![
        users::deactivate(&cx.db, user)?,
        access_tokens::delete_all(&cx.db, user)?,
        access_tokens::delete_puppets(&cx.db, user)?,
        pushers::delete_all(&cx.db, user)?,
        devices::delete_all(&cx.db, user)?,
        profiles::delete_all(&cx.db, user)?,
        user_threepids::delete_all(&cx.db, user)?,
        monthly_active_users::delete(&cx.db, user)?,
    ];
    if erase {
        statements.push(erased_users::insert(&cx.db, user)?);
    }
    cx.db.batch(statements).await?;
    device_lists::announce(cx, user).await?;
    let rooms: Vec<String> = current_state::memberships_of_user(&cx.db, user)
        .await?
        .into_iter()
        .filter(|m| matches!(m.membership.as_str(), "join" | "invite" | "knock"))
        .map(|m| m.room_id)
        .collect();
    if let Err(e) = deactivation::leave_rooms(&cx.env, user, rooms).await {
        // The account is gone either way; only its memberships stay behind.
        crate::log::error(&format!("deactivation of {user}: the rooms were not handed over: {e:?}"));
    }
    Ok(())
}
