//! One user's long-polling /sync waiters, woken by stream positions, never by data.
//!
//! Declared and bound now so that storage migrations stay linear; it serves nothing yet and
//! answers every request with `M_UNRECOGNIZED`.

use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::{ErrorKind, MatrixError};
use crate::http::Reply;

#[durable_object]
pub struct UserSync {
    #[allow(dead_code)]
    state: State,
}

impl DurableObject for UserSync {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        let error = MatrixError::new(ErrorKind::Unrecognized, "UserSync serves nothing yet").into();
        Reply::error(&error).into_response(None)
    }
}
