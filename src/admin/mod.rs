//! The admin API, compatible with Synapse's (`/_synapse/admin`), so that its tools work. Every
//! endpoint but `server_version` and the shared-secret registration needs an admin's token
//! (`Auth::Admin` in the route table).

pub mod local_query;
pub mod media;
pub mod register;
pub mod registration_tokens;
pub mod rooms;
pub mod users;

use ruma_common::OwnedUserId;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{invalid_param, ErrorKind, MatrixError, Result};
use crate::http::Reply;

/// `GET /_synapse/admin/v1/server_version`.
pub async fn server_version(_cx: Ctx) -> Result<Reply> {
    Reply::json(&json!({ "server_version": concat!("Stratus ", env!("CARGO_PKG_VERSION")) }))
}

/// The `userId` path parameter, which must be a local user's ID.
pub fn local_path_user(cx: &Ctx) -> Result<OwnedUserId> {
    let user_id = cx.path_user()?.to_owned();
    if user_id.server_name() != cx.config.server_name {
        return Err(invalid_param("Can only look up local users"));
    }
    Ok(user_id)
}

pub fn user_not_found() -> crate::error::Error {
    MatrixError::new(ErrorKind::NotFound, "User not found").into()
}
