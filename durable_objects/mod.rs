//! The Durable Object classes, one per job. Each is bound in wrangler.toml.

pub mod appservice;
pub mod deactivation;
pub mod push_queue;
pub mod relay;
pub mod room;
pub mod room_deletion;
pub mod user_presence;
pub mod user_sync;

use serde::Serialize;
use worker::{Env, Method, Request, RequestInit};

use crate::error::{internal, Result};

/// POSTs `request` as JSON to `url` on the object `name` of the class bound as `binding`, and
/// returns the answer's status and text. Every call to an object goes through here, where it
/// counts against the invocation's subrequests.
async fn post(env: &Env, binding: &str, name: &str, url: &str, request: &impl Serialize) -> Result<(u16, String)> {
    let stub = env.durable_object(binding)?.id_from_name(name)?.get_stub()?;
    let body = serde_json::to_string(request).map_err(|e| internal(binding, e))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    crate::cost::durable_object();
    let mut res = stub.fetch_with_request(Request::new_with_init(url, &init)?).await?;
    Ok((res.status_code(), res.text().await?))
}
