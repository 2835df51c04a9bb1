//! The admin API's media quarantine, as Synapse's: `POST
//! /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}` and `.../unquarantine/...`,
//! `POST /_synapse/admin/v1/media/protect/{mediaId}` and `.../unprotect/...`, `POST
//! /_synapse/admin/v1/room/{roomId}/media/quarantine`, `GET /_synapse/admin/v1/room/{roomId}/media`
//! and `POST /_synapse/admin/v1/user/{userId}/media/quarantine`.
//!
//! A quarantined file is not served (404, thumbnails too); a protected one is never quarantined.
//! Only this server's media exist here: a file of another server is nothing to act on, and the
//! answer is the same as Synapse's.

use serde_json::json;

use crate::client::rooms::room_id_param;
use crate::context::Ctx;
use crate::error::Result;
use crate::http::Reply;
use crate::storage::media;

fn mxc_prefix(cx: &Ctx) -> String {
    format!("mxc://{}/", cx.config.server_name)
}

fn is_local(cx: &Ctx) -> bool {
    cx.param("serverName") == cx.config.server_name.as_str()
}

async fn set_quarantine(cx: &Ctx, quarantine: bool) -> Result<Reply> {
    if is_local(cx) {
        let admin = cx.requester()?.user_id.to_string();
        let by = quarantine.then_some(admin.as_str());
        cx.db.run(media::set_quarantine(&cx.db, cx.param("mediaId"), by)?).await?;
    }
    Reply::json(&json!({}))
}

pub async fn quarantine(cx: Ctx) -> Result<Reply> {
    set_quarantine(&cx, true).await
}

pub async fn unquarantine(cx: Ctx) -> Result<Reply> {
    set_quarantine(&cx, false).await
}

pub async fn protect(cx: Ctx) -> Result<Reply> {
    cx.db.run(media::protect(&cx.db, cx.param("mediaId"), true)?).await?;
    Reply::json(&json!({}))
}

pub async fn unprotect(cx: Ctx) -> Result<Reply> {
    cx.db.run(media::protect(&cx.db, cx.param("mediaId"), false)?).await?;
    Reply::json(&json!({}))
}

/// Every file of this server that the room's events refer to.
pub async fn quarantine_room_media(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let media_ids = media::in_room(&cx.db, room_id.as_str(), &mxc_prefix(&cx)).await?;
    let admin = cx.requester()?.user_id.to_string();
    let quarantined = match media_ids.is_empty() {
        true => 0,
        false => media::quarantine_ids(&cx.db, &media_ids, &admin).await?,
    };
    Reply::json(&json!({ "num_quarantined": quarantined }))
}

/// The media the room's events refer to, as `mxc://` URIs (`remote` is always empty here).
pub async fn list_room_media(cx: Ctx) -> Result<Reply> {
    let room_id = room_id_param(&cx)?;
    let prefix = mxc_prefix(&cx);
    let local: Vec<String> = media::in_room(&cx.db, room_id.as_str(), &prefix)
        .await?
        .into_iter()
        .map(|id| format!("{prefix}{id}"))
        .collect();
    Reply::json(&json!({ "local": local, "remote": [] }))
}

/// Every file the user uploaded.
pub async fn quarantine_user_media(cx: Ctx) -> Result<Reply> {
    let user_id = cx.path_user()?.to_string();
    let admin = cx.requester()?.user_id.to_string();
    let quarantined = media::quarantine_of_user(&cx.db, &user_id, &admin).await?;
    Reply::json(&json!({ "num_quarantined": quarantined }))
}
