//! Paging through rooms: `GET /rooms/{roomId}/messages`, `/context/{eventId}` and
//! `/timestamp_to_event`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

fn todo() -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}

pub async fn get_message_events(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_context(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_event_by_timestamp(_cx: Ctx) -> Result<Reply> {
    todo()
}
