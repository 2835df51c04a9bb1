//! Room upgrades: `POST /rooms/{roomId}/upgrade`.

use crate::error::{ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::router::Ctx;

pub async fn upgrade_room(_cx: Ctx) -> Result<Reply> {
    Err(MatrixError::new(ErrorKind::Unrecognized, "Not yet").into())
}
