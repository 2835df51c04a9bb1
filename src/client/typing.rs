//! Typing notifications: `PUT /rooms/{roomId}/typing/{userId}`.
//!
//! A user says they type for the next `timeout` milliseconds (at most [`MAX_TIMEOUT_MS`]), or
//! that they stopped. Only for themselves, and only in a room they are joined to. `/sync` reads
//! the result through [`crate::storage::typing::in_rooms`] and `changed_since`.

use serde::Deserialize;

use crate::appservice::ephemeral::{self, Stream};
use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::{forbidden, invalid_param, Result};
use crate::http::Reply;
use crate::storage::{current_state, typing};
use crate::time::now_ms;

use super::rooms::room_id_param;

/// The longest a user is marked as typing without saying so again, and the default. Clients
/// resend every 20 to 30 seconds while the user types (the spec recommends that), so a longer
/// timeout would only keep a vanished client "typing" longer.
pub const MAX_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Deserialize)]
struct TypingBody {
    typing: bool,
    timeout: Option<serde_json::Number>,
}

pub async fn set_typing(cx: Ctx) -> Result<Reply> {
    let user_id = cx.requester_as_path_user()?.user_id.to_string();
    let room_id = room_id_param(&cx)?;
    let body: TypingBody = cx.req.json()?;
    let timeout = if body.typing { timeout_ms(body.timeout.as_ref())? } else { 0 };
    let membership = current_state::membership(&cx.db, room_id.as_str(), &user_id).await?;
    if !matches!(membership, Some((m, _)) if m == "join") {
        return Err(forbidden("You are not joined to this room"));
    }
    let now = now_ms();
    let statements = match timeout {
        0 => vec![typing::stop(&cx.db, room_id.as_str(), &user_id, now)?],
        timeout => typing::start(&cx.db, room_id.as_str(), &user_id, now + timeout, now)?,
    };
    cx.db.batch(statements).await?;
    let positions = Positions { typing: typing::max_stream_id(&cx.db).await?, ..Positions::default() };
    user_sync::notify_room(&cx.env, &cx.db, room_id.as_str(), positions).await?;
    ephemeral::poke(&cx, Stream::Ephemeral, None);
    Ok(Reply::empty())
}

/// The typing timeout: [`MAX_TIMEOUT_MS`] when absent, capped at it, `M_INVALID_PARAM` when it
/// is not a non-negative number. 0 means not typing.
fn timeout_ms(raw: Option<&serde_json::Number>) -> Result<u64> {
    let Some(raw) = raw else { return Ok(MAX_TIMEOUT_MS) };
    match raw.as_f64() {
        Some(ms) if ms >= 0.0 => Ok((ms as u64).min(MAX_TIMEOUT_MS)),
        _ => Err(invalid_param(format!("timeout must be a non-negative number of milliseconds, not {raw}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: serde_json::Value) -> serde_json::Number {
        match v {
            serde_json::Value::Number(n) => n,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn timeouts_default_and_are_capped() {
        assert_eq!(timeout_ms(None).unwrap(), MAX_TIMEOUT_MS);
        assert_eq!(timeout_ms(Some(&n(serde_json::json!(5000)))).unwrap(), 5000);
        assert_eq!(timeout_ms(Some(&n(serde_json::json!(0)))).unwrap(), 0);
        assert_eq!(timeout_ms(Some(&n(serde_json::json!(2500.7)))).unwrap(), 2500);
        assert_eq!(timeout_ms(Some(&n(serde_json::json!(u64::MAX)))).unwrap(), MAX_TIMEOUT_MS);
        assert_eq!(timeout_ms(Some(&n(serde_json::json!(1e300)))).unwrap(), MAX_TIMEOUT_MS);
        let err = timeout_ms(Some(&n(serde_json::json!(-1)))).unwrap_err();
        assert_eq!(err.matrix().unwrap().kind, crate::error::ErrorKind::InvalidParam);
    }
}
