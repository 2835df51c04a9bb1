//! Device management: `GET /devices`, `GET`, `PUT` and `DELETE /devices/{deviceId}`,
//! `POST /delete_devices`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::device_lists;
use crate::client::session::check_device_fields;
use crate::context::Ctx;
use crate::error::{bad_json, invalid_param, not_found, Result};
use crate::http::{parse_json_object, Reply};
use crate::storage::{access_tokens, devices, pushers, Statement};
use crate::time::now_ms;
use crate::uia::{self, AuthData, Flows};

const FLOWS: Flows = &[&[uia::PASSWORD]];
/// The most devices one `delete_devices` call may name.
const MAX_DEVICES_PER_CALL: usize = 1000;

/// Whether the request is an application service's: since spec v1.17 (MSC4190, which bridges
/// announce as `io.element.msc4190`) a service creates and deletes its users' devices itself,
/// without user-interactive auth.
fn manages_devices(cx: &Ctx) -> Result<bool> {
    Ok(cx.requester()?.appservice.is_some())
}

pub async fn get_devices(cx: Ctx) -> Result<Reply> {
    let list = devices::list(&cx.db, cx.requester()?.user_id.as_str()).await?;
    Reply::json(&json!({ "devices": list }))
}

pub async fn get_device(cx: Ctx) -> Result<Reply> {
    let device = devices::get(&cx.db, cx.requester()?.user_id.as_str(), cx.param("deviceId")).await?;
    Reply::json(&device.ok_or_else(|| not_found("Unknown device"))?)
}

pub async fn update_device(cx: Ctx) -> Result<Reply> {
    let body: serde_json::Map<String, Value> = cx.req.json()?;
    let user = cx.requester()?.user_id.as_str();
    let device_id = cx.param("deviceId");
    let name = match body.get("display_name") {
        None => None,
        Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => return Err(bad_json("display_name must be a string")),
    };
    if devices::get(&cx.db, user, device_id).await?.is_none() {
        if !manages_devices(&cx)? {
            return Err(not_found("Unknown device"));
        }
        // MSC4190: a service creates its users' devices, with no access token.
        check_device_fields(device_id, name)?;
        cx.db.run(devices::upsert(&cx.db, user, device_id, name, now_ms(), None)?).await?;
        device_lists::announce(&cx, user).await?;
        let mut created = Reply::empty();
        created.status = 201;
        return Ok(created);
    }
    if !body.contains_key("display_name") {
        return Ok(Reply::empty());
    }
    check_device_fields(device_id, name)?;
    cx.db.run(devices::set_display_name(&cx.db, user, device_id, name)?).await?;
    device_lists::announce(&cx, user).await?;
    Ok(Reply::empty())
}

#[derive(Default, Deserialize)]
struct DeleteDeviceBody {
    auth: Option<AuthData>,
}

pub async fn delete_device(cx: Ctx) -> Result<Reply> {
    // Like Synapse, take an empty body as "no auth yet": older clients send none.
    let body: DeleteDeviceBody =
        if cx.req.body.is_empty() { DeleteDeviceBody::default() } else { parse_json_object(&cx.req.body)? };
    let requester = cx.requester()?;
    if !manages_devices(&cx)? {
        uia::authenticate(&cx, body.auth, FLOWS, Some(&requester.user_id)).await?;
    }
    cx.db.batch(delete_statements(&cx, &[cx.param("deviceId").to_owned()])?).await?;
    device_lists::announce(&cx, requester.user_id.as_str()).await?;
    Ok(Reply::empty())
}

#[derive(Deserialize)]
struct DeleteDevicesBody {
    auth: Option<AuthData>,
    devices: Vec<String>,
}

pub async fn delete_devices(cx: Ctx) -> Result<Reply> {
    let body: DeleteDevicesBody = cx.req.json()?;
    if body.devices.len() > MAX_DEVICES_PER_CALL {
        return Err(invalid_param(format!("At most {MAX_DEVICES_PER_CALL} devices may be deleted at once")));
    }
    let requester = cx.requester()?;
    if !manages_devices(&cx)? {
        uia::authenticate(&cx, body.auth, FLOWS, Some(&requester.user_id)).await?;
    }
    if !body.devices.is_empty() {
        cx.db.batch(delete_statements(&cx, &body.devices)?).await?;
        device_lists::announce(&cx, requester.user_id.as_str()).await?;
    }
    Ok(Reply::empty())
}

/// Deleting a device revokes its tokens and removes its pushers with it, and (by the `devices`
/// triggers) deletes its keys and records a device list change. Unknown devices are skipped, as in
/// Synapse.
fn delete_statements(cx: &Ctx, device_ids: &[String]) -> Result<Vec<Statement>> {
    let user = cx.requester()?.user_id.as_str();
    let mut statements = Vec::with_capacity(device_ids.len() * 3);
    for device_id in device_ids {
        statements.push(access_tokens::delete_for_device(&cx.db, user, device_id)?);
        statements.push(pushers::delete_for_device(&cx.db, user, device_id)?);
        statements.push(devices::delete(&cx.db, user, device_id)?);
    }
    Ok(statements)
}
