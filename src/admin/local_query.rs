//! `POST /_stratus/local/v1/query`: how the local commands (`npm run appservice`) reach the D1 of
//! a running dev server. Writing the local D1 file beside the server makes one of the two fail
//! with `SQLITE_BUSY`; through the server, its D1 serializes the statement with its own.
//!
//! Only `scripts/serve` turns it on: it keeps a random secret in the state directory and passes
//! it as `LOCAL_COMMAND_SECRET`, so whoever can read the state (and so the D1 file itself) may
//! call it. A deployed worker has no such secret, and the endpoint answers as an unknown one.

use serde::Deserialize;
use serde_json::{json, Value};

use super::register::constant_time_eq;
use crate::auth;
use crate::context::Ctx;
use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;

#[derive(Deserialize)]
struct Body {
    sql: String,
}

/// Runs one statement and answers as `wrangler d1 execute --json` prints it.
pub async fn query(cx: Ctx) -> Result<Reply> {
    let Some(secret) = cx.config.local_command_secret.as_deref() else {
        return Err(MatrixError::new(ErrorKind::Unrecognized, "Unrecognized request").into());
    };
    let given = auth::access_token(&cx.req)?.unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), secret.as_bytes()) {
        return Err(MatrixError::new(ErrorKind::Forbidden, "Not the local command secret of this server").into());
    }
    let body: Body = cx.req.json()?;
    let results: Vec<Value> = cx.db.all(&body.sql, &[]).await?;
    Reply::json(&json!([{ "results": results, "success": true }]))
}
