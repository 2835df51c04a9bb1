//! Relations and threads: `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` and
//! `GET /rooms/{roomId}/threads`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

fn todo() -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}

pub async fn get_relating_events(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_relating_events_with_rel_type(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_relating_events_with_rel_type_and_event_type(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_threads(_cx: Ctx) -> Result<Reply> {
    todo()
}
