//! The server's signing key, loaded once per isolate (and created on first use), and
//! `GET /_matrix/key/v2/server`, where it is published self-signed.

use std::cell::RefCell;
use std::rc::Rc;

use ruma_common::{CanonicalJsonObject, CanonicalJsonValue};

use crate::context::Ctx;
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::room::signing::{new_seed, ServerKey};
use crate::storage::{server_keys, Db};
use crate::time::now_ms;
use crate::tokens::random_string;

/// How long other servers may cache the published key.
const VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

thread_local! {
    static KEY: RefCell<Option<Rc<ServerKey>>> = const { RefCell::new(None) };
}

/// The key in use, from the isolate's cache or D1; the first caller ever creates it.
pub async fn signing_key(db: &Db) -> Result<Rc<ServerKey>> {
    if let Some(key) = KEY.with(|k| k.borrow().clone()) {
        return Ok(key);
    }
    let stored = match server_keys::current(db).await? {
        Some(stored) => stored,
        None => {
            let version = random_string(6, b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")?;
            let seed = new_seed().map_err(|e| internal("generating the signing key", e))?;
            db.run(server_keys::insert_first(db, &format!("ed25519:a_{version}"), &seed, now_ms())?).await?;
            server_keys::current(db).await?.ok_or_else(|| internal("signing key", "vanished after insert"))?
        }
    };
    let key = Rc::new(ServerKey::from_seed(&stored.key_id, &stored.seed).map_err(|e| internal("signing key", e))?);
    KEY.with(|k| *k.borrow_mut() = Some(key.clone()));
    Ok(key)
}

/// `GET /_matrix/key/v2/server`
pub async fn get_server_keys(cx: Ctx) -> Result<Reply> {
    let key = signing_key(&cx.db).await?;
    let server_name = cx.config.server_name.as_str();
    let mut verify_key = CanonicalJsonObject::new();
    verify_key.insert("key".into(), CanonicalJsonValue::String(key.public_key()));
    let mut verify_keys = CanonicalJsonObject::new();
    verify_keys.insert(key.key_id.clone(), CanonicalJsonValue::Object(verify_key));
    let valid_until = js_int::UInt::try_from(now_ms() + VALIDITY_MS).unwrap_or(js_int::UInt::MAX);
    let mut body = CanonicalJsonObject::new();
    body.insert("server_name".into(), CanonicalJsonValue::String(server_name.to_owned()));
    body.insert("valid_until_ts".into(), CanonicalJsonValue::Integer(valid_until.into()));
    body.insert("verify_keys".into(), CanonicalJsonValue::Object(verify_keys));
    body.insert("old_verify_keys".into(), CanonicalJsonValue::Object(CanonicalJsonObject::new()));
    key.sign_json(server_name, &mut body).map_err(|e| internal("signing the key response", e))?;
    Reply::json(&body)
}
