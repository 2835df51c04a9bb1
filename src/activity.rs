//! Recording a token's use: its client address and user agent (`user_ips`), its device's "last
//! seen", and its user's monthly activity. At most once a minute per token (a device has one), in
//! one background batch after the response, so an authenticated request pays no query for it.
//!
//! A puppet token records its admin; its target only with `TRACK_PUPPETED_USER_IPS`, so that
//! puppeting does not make a user active. A service's users are recorded only with
//! `TRACK_APPSERVICE_USER_IPS`, throttled per isolate as their tokens have no row.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::auth::{Requester, LAST_SEEN_RESOLUTION_MS};
use crate::config::Config;
use crate::error::Result;
use crate::http::Incoming;
use crate::storage::{access_tokens, devices, monthly_active_users, user_ips, Db, Statement};

/// The statements that record this request, if it is due: `token_hash` is set when a user's
/// token is due (see [`crate::auth::authenticate`]).
pub fn record(
    db: &Db,
    config: &Config,
    requester: &Requester,
    req: &Incoming,
    token_hash: Option<&str>,
    now_ms: u64,
) -> Result<Vec<Statement>> {
    let mut statements = Vec::new();
    if let Some(hash) = token_hash {
        statements.push(access_tokens::mark_used(db, hash, now_ms)?);
        if !requester.device_id.is_empty() {
            statements.push(devices::touch(
                db,
                requester.user_id.as_str(),
                &requester.device_id,
                now_ms,
                req.ip.as_deref(),
            )?);
        }
    } else if requester.appservice.is_none()
        || !config.track_appservice_user_ips
        || !service_user_due(requester, now_ms)
    {
        return Ok(statements);
    }
    let user_agent = req.header("user-agent").unwrap_or_default();
    let mut active = vec![requester.entity().as_str()];
    if requester.puppeted_by.is_some() && config.track_puppeted_user_ips {
        active.push(requester.user_id.as_str());
    }
    for user in active {
        if let Some(ip) = req.ip.as_deref() {
            statements.push(user_ips::upsert(db, user, &requester.device_id, ip, &user_agent, now_ms)?);
        }
        if config.mau.enabled {
            statements.push(monthly_active_users::upsert(db, user, now_ms, Some(config.mau.max), config.mau.trial_ms)?);
        }
    }
    if config.mau.enabled {
        statements.push(monthly_active_users::reap(db, now_ms, &reserved_json(config))?);
    }
    Ok(statements)
}

/// The reserved third-party IDs as a JSON list of `[medium, address]`.
pub fn reserved_json(config: &Config) -> String {
    serde_json::to_string(&config.mau.reserved_threepids).unwrap_or_else(|_| "[]".into())
}

/// Whether a service's user was last recorded by this isolate over a minute ago.
fn service_user_due(requester: &Requester, now_ms: u64) -> bool {
    thread_local!(static SEEN: RefCell<HashMap<(String, String), u64>> = RefCell::new(HashMap::new()));
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let key = (requester.user_id.to_string(), requester.device_id.clone());
        match seen.get(&key) {
            Some(t) if t.saturating_add(LAST_SEEN_RESOLUTION_MS) >= now_ms => false,
            _ => {
                // Keep the map small: old entries say nothing a fresh one would not.
                seen.retain(|_, t| t.saturating_add(LAST_SEEN_RESOLUTION_MS) >= now_ms);
                seen.insert(key, now_ms);
                true
            }
        }
    })
}
