//! Reading rooms: `GET /rooms/{roomId}/state`, `/state/{eventType}/{stateKey}`,
//! `/event/{eventId}`, `/members` and `/joined_members`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

fn todo() -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}

pub async fn get_state_events(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_state_events_for_key(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_room_event(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_member_events(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn joined_members(_cx: Ctx) -> Result<Reply> {
    todo()
}
