//! Shared-secret registration, as Synapse's: `GET` and `POST /_synapse/admin/v1/register`. A
//! client fetches a nonce, then proves it knows `REGISTRATION_SHARED_SECRET` with an HMAC-SHA1 of
//! the nonce, user name, password, admin flag and user type. This is how the first admin is made.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha1::Sha1;

use crate::auth_blocking::{self, Subject};
use crate::client::session::new_session;
use crate::context::Ctx;
use crate::error::{bad_json, forbidden, invalid_param, missing_param, unknown, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::identifiers::user_id_for_registration;
use crate::password;
use crate::storage::{admin_register_nonces, profiles, users};
use crate::time::now_ms;
use crate::tokens::random_string;

/// How long a nonce is good for, as in Synapse.
const NONCE_LIFETIME_MS: u64 = 60_000;
const MAX_PASSWORD_BYTES: usize = 512;
const USER_TYPES: &[&str] = &["support", "bot"];

fn secret(cx: &Ctx) -> Result<&str> {
    cx.config.registration_shared_secret.as_deref().ok_or_else(|| bad_json("Shared secret registration is not enabled"))
}

/// `GET`: a fresh nonce.
pub async fn get_nonce(cx: Ctx) -> Result<Reply> {
    secret(&cx)?;
    let nonce = random_string(32, b"0123456789abcdef")?;
    let now = now_ms();
    cx.db
        .batch(vec![
            admin_register_nonces::delete_expired(&cx.db, now.saturating_sub(NONCE_LIFETIME_MS))?,
            admin_register_nonces::insert(&cx.db, &nonce, now)?,
        ])
        .await?;
    Reply::json(&json!({ "nonce": nonce }))
}

#[derive(Deserialize)]
struct Body {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    user_type: Option<String>,
    displayname: Option<String>,
    mac: String,
}

/// The MAC Synapse expects: HMAC-SHA1 over the fields joined by NUL, hex-encoded.
pub fn mac(secret: &str, nonce: &str, username: &str, password: &str, admin: bool, user_type: Option<&str>) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(username.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin { b"admin" as &[u8] } else { b"notadmin" });
    if let Some(user_type) = user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST`: registers the user the MAC vouches for, and logs them in.
pub async fn register(cx: Ctx) -> Result<Reply> {
    let secret = secret(&cx)?.to_owned();
    let body: Body = cx.req.json()?;
    if body.password.is_empty() || body.password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid_param("Invalid password"));
    }
    if body.user_type.as_deref().is_some_and(|t| !USER_TYPES.contains(&t)) {
        return Err(invalid_param("Invalid user type"));
    }
    if body.mac.is_empty() {
        return Err(missing_param("mac is required"));
    }
    let now = now_ms();
    // Spent whatever follows, as in Synapse: a nonce is good for one try.
    let spent =
        cx.db.run(admin_register_nonces::spend(&cx.db, &body.nonce, now.saturating_sub(NONCE_LIFETIME_MS))?).await?;
    if spent == 0 {
        return Err(unknown("unrecognised nonce"));
    }
    let want = mac(&secret, &body.nonce, &body.username, &body.password, body.admin, body.user_type.as_deref());
    if !constant_time_eq(want.as_bytes(), body.mac.to_lowercase().as_bytes()) {
        return Err(forbidden("HMAC incorrect"));
    }
    // Synapse makes the account and then refuses its token; nothing is made here.
    let newcomer = Subject::Newcomer { user_type: body.user_type.as_deref(), threepid: None };
    auth_blocking::check(&cx.db, &cx.config, &newcomer, None).await?;
    let user_id = user_id_for_registration(&body.username.to_lowercase(), &cx.config.server_name)?;
    let hash = password::hash(&body.password, cx.config.password_cost)?;
    let kind = users::NewUser { admin: body.admin, user_type: body.user_type.as_deref(), ..Default::default() };
    let displayname = body.displayname.as_deref().unwrap_or(user_id.localpart());
    let session = new_session(&cx, &user_id, None, None)?;
    let mut statements = vec![
        users::insert(&cx.db, user_id.as_str(), Some(&hash), &kind, now)?,
        profiles::set(&cx.db, user_id.as_str(), "displayname", &Value::from(displayname).to_string())?,
    ];
    statements.extend(session.statements);
    if cx.db.try_batch(statements).await?.is_none() {
        return Err(MatrixError::new(ErrorKind::UserInUse, "User ID already taken").into());
    }
    Reply::json(&json!({
        "user_id": user_id,
        "home_server": cx.config.server_name,
        "access_token": session.access_token,
        "device_id": session.device_id,
    }))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_matches_synapses_scheme() {
        // hmac.new(b"secret", b"abc\x00bob\x00pw\x00admin", hashlib.sha1).hexdigest()
        assert_eq!(mac("secret", "abc", "bob", "pw", true, None), "7135c477a04354f80777f35ba4505ef76b59e196");
        assert_ne!(mac("secret", "abc", "bob", "pw", false, None), mac("secret", "abc", "bob", "pw", true, None));
        assert_ne!(mac("secret", "abc", "bob", "pw", true, Some("bot")), mac("secret", "abc", "bob", "pw", true, None));
    }
}
