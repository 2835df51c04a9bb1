//! OpenID: `POST /user/{userId}/openid/request_token`, and the federation API's
//! `GET /_matrix/federation/v1/openid/userinfo`, which a third party (an integration manager)
//! calls to learn whose token it was given.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::storage::openid_tokens;
use crate::time::now_ms;
use crate::tokens::{new_access_token, token_hash};

/// How long a token lives, as in Synapse.
const LIFETIME_MS: u64 = 60 * 60 * 1000;

pub async fn request_openid_token(cx: Ctx) -> Result<Reply> {
    let requester = cx.requester_as_path_user()?;
    // The body is an empty object; anything else is not JSON the spec knows.
    let _: serde_json::Map<String, serde_json::Value> = cx.req.json_or_empty()?;
    let token = new_access_token()?;
    let now = now_ms();
    cx.db
        .batch(vec![
            openid_tokens::delete_expired(&cx.db, now)?,
            openid_tokens::insert(&cx.db, &token_hash(&token), requester.user_id.as_str(), now + LIFETIME_MS)?,
        ])
        .await?;
    Reply::json(&json!({
        "access_token": token,
        "token_type": "Bearer",
        "matrix_server_name": cx.config.server_name,
        "expires_in": LIFETIME_MS / 1000,
    }))
}

pub async fn get_openid_userinfo(cx: Ctx) -> Result<Reply> {
    let token = cx
        .req
        .query("access_token")
        .ok_or_else(|| MatrixError::new(ErrorKind::MissingToken, "Missing OpenID token"))?;
    let user_id = openid_tokens::owner(&cx.db, &token_hash(token), now_ms())
        .await?
        .ok_or_else(|| MatrixError::new(ErrorKind::UnknownToken { soft_logout: false }, "Unknown OpenID token"))?;
    Reply::json(&json!({ "sub": user_id }))
}
