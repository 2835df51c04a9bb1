//! The admin API's registration tokens: `GET /_synapse/admin/v1/registration_tokens`,
//! `POST /_synapse/admin/v1/registration_tokens/new`, and `GET`, `PUT` and `DELETE
//! /_synapse/admin/v1/registration_tokens/{token}`.

use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::error::{invalid_param, not_found, Result};
use crate::http::Reply;
use crate::storage::registration_tokens;
use crate::time::now_ms;
use crate::tokens::random_string;

/// Synapse's alphabet for tokens.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
const MAX_LENGTH: u64 = 64;

/// `?valid=true|false` filters; without it, every token.
pub async fn list(cx: Ctx) -> Result<Reply> {
    let valid = match cx.req.query("valid") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(invalid_param(format!("valid must be true or false, not {other:?}"))),
    };
    let tokens = registration_tokens::list(&cx.db, valid, now_ms()).await?;
    Reply::json(&json!({ "registration_tokens": tokens }))
}

/// A field that may be absent, `null`, or a whole number (not below `min`).
fn optional_count(body: &Map<String, Value>, name: &str, min: u64) -> Result<Option<Option<u64>>> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(n) if n >= min => Ok(Some(Some(n))),
            _ => Err(invalid_param(format!("{name} must be a non-negative integer or null"))),
        },
    }
}

fn expiry(body: &Map<String, Value>) -> Result<Option<Option<u64>>> {
    let expiry =
        optional_count(body, "expiry_time", 0).map_err(|_| invalid_param("expiry_time must be an integer or null"))?;
    if let Some(Some(t)) = expiry {
        if t < now_ms() {
            return Err(invalid_param("expiry_time must not be in the past"));
        }
    }
    Ok(expiry)
}

/// Body: `token` (or `length`, default 16), `uses_allowed`, `expiry_time`.
pub async fn create(cx: Ctx) -> Result<Reply> {
    let body: Map<String, Value> = cx.req.json_or_empty()?;
    let token = match body.get("token") {
        Some(Value::String(t)) => {
            if t.is_empty() || t.len() > MAX_LENGTH as usize {
                return Err(invalid_param("token must not be empty and must not be longer than 64 characters"));
            }
            if !t.bytes().all(|b| ALPHABET.contains(&b)) {
                return Err(invalid_param("token must consist only of characters matched by the regex [A-Za-z0-9-_]"));
            }
            t.clone()
        }
        Some(_) => return Err(invalid_param("token must be a string")),
        None => {
            let length = match body.get("length") {
                None => 16,
                Some(v) => v.as_u64().ok_or_else(|| invalid_param("length must be an integer"))?,
            };
            if !(1..=MAX_LENGTH).contains(&length) {
                return Err(invalid_param("length must be greater than zero and not greater than 64"));
            }
            random_string(length as usize, ALPHABET)?
        }
    };
    let uses_allowed = optional_count(&body, "uses_allowed", 0)?.flatten();
    let expiry_time = expiry(&body)?.flatten();
    if !registration_tokens::insert(&cx.db, &token, uses_allowed, expiry_time).await? {
        return Err(invalid_param(format!("Token already exists: {token}")));
    }
    Reply::json(&json!({
        "token": token,
        "uses_allowed": uses_allowed,
        "pending": 0,
        "completed": 0,
        "expiry_time": expiry_time,
    }))
}

async fn found(cx: &Ctx, token: &str) -> Result<Reply> {
    let stored = registration_tokens::get(&cx.db, token).await?;
    Reply::json(&stored.ok_or_else(|| not_found(format!("No such registration token: {token}")))?)
}

pub async fn get(cx: Ctx) -> Result<Reply> {
    found(&cx, cx.param("token")).await
}

/// Body: `uses_allowed` and `expiry_time`, each optional.
pub async fn update(cx: Ctx) -> Result<Reply> {
    let body: Map<String, Value> = cx.req.json_or_empty()?;
    let uses_allowed = optional_count(&body, "uses_allowed", 0)?;
    let expiry_time = expiry(&body)?;
    let token = cx.param("token");
    registration_tokens::update(&cx.db, token, uses_allowed, expiry_time).await?;
    found(&cx, token).await
}

pub async fn delete(cx: Ctx) -> Result<Reply> {
    let token = cx.param("token");
    if !registration_tokens::delete(&cx.db, token).await? {
        return Err(not_found(format!("No such registration token: {token}")));
    }
    Ok(Reply::empty())
}
