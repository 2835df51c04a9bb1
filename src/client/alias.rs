//! Room aliases: `GET`, `PUT` and `DELETE /directory/room/{roomAlias}`, and
//! `GET /rooms/{roomId}/aliases`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

fn todo() -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}

pub async fn get_alias(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn create_alias(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn delete_alias(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_room_aliases(_cx: Ctx) -> Result<Reply> {
    todo()
}
