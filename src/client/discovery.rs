//! Server discovery and capabilities: `GET /_matrix/client/versions`,
//! `GET /.well-known/matrix/{client,server,support}`, `GET /_matrix/client/v3/capabilities`.

use serde_json::json;

use crate::config::AdminContact;
use crate::context::Ctx;
use crate::error::{not_found, Result};
use crate::http::Reply;
use crate::room::versions;

/// The spec versions whose Client-Server API this server follows.
const SPEC_VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
    "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
];

pub async fn get_supported_versions(_cx: Ctx) -> Result<Reply> {
    Reply::json(&json!({ "versions": SPEC_VERSIONS, "unstable_features": {"org.matrix.simplified_msc3575": true} }))
}

pub async fn get_client_well_known(cx: Ctx) -> Result<Reply> {
    Reply::json(&json!({ "m.homeserver": { "base_url": cx.base_url() } }))
}

/// Delegates federation to the host that serves this API, on the standard port.
pub async fn get_server_well_known(cx: Ctx) -> Result<Reply> {
    let base = cx.base_url();
    let host = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
    let server = if host.contains(':') && !host.ends_with(']') { host.to_owned() } else { format!("{host}:443") };
    Reply::json(&json!({ "m.server": server }))
}

pub async fn get_support(cx: Ctx) -> Result<Reply> {
    let contact = match &cx.config.admin_contact {
        None => return Err(not_found("No support contact is configured")),
        Some(AdminContact::Email(email)) => json!({ "role": "m.role.admin", "email_address": email }),
        Some(AdminContact::Matrix(user_id)) => json!({ "role": "m.role.admin", "matrix_id": user_id }),
    };
    Reply::json(&json!({ "contacts": [contact] }))
}

pub async fn get_capabilities(_cx: Ctx) -> Result<Reply> {
    let available: serde_json::Map<String, serde_json::Value> =
        versions::SUPPORTED.iter().map(|v| (v.to_string(), json!("stable"))).collect();
    Reply::json(&json!({
        "capabilities": {
            "m.change_password": { "enabled": true },
            "m.room_versions": { "default": versions::DEFAULT, "available": available },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": false },
            "m.profile_fields": { "enabled": true },
        }
    }))
}
