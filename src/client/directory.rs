//! The public room directory: `GET` and `POST /publicRooms`, and `GET` and
//! `PUT /directory/list/room/{roomId}`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

fn todo() -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}

pub async fn get_public_rooms(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_public_rooms_filtered(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn get_room_visibility(_cx: Ctx) -> Result<Reply> {
    todo()
}
pub async fn set_room_visibility(_cx: Ctx) -> Result<Reply> {
    todo()
}
