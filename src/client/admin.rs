//! The Client-Server API's one admin endpoint: `GET /_matrix/client/v3/admin/whois/{userId}`.

use crate::context::Ctx;
use crate::error::{forbidden, Result};
use crate::http::Reply;

/// A user's devices and their connections, as the admin API's `whois` shows them. The spec lets
/// a server keep it to the user looked up and to server admins, as Synapse does.
pub async fn whois(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester()?;
    if !requester.is_admin && cx.path_user()? != requester.user_id {
        return Err(forbidden("You may only look up yourself"));
    }
    crate::admin::users::whois(cx).await
}
