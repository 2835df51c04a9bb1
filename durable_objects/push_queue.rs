//! One user's push deliveries: a durable queue per pusher, sent to push gateways in order and
//! retried with backoff through alarms, so that one slow or failing gateway never delays
//! another user's pushes.
//!
//! (Scaffolding: the request protocol is fixed; delivery is being built.)

use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, RequestInit, Response, State};

use crate::error::{internal, Result};
use crate::http::Reply;
use crate::push::notification::EventNotification;

/// What the worker and the room writers ask of a user's push queue.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PushRequest {
    /// Events that notify the user, in stream order: queue them for each of the user's pushers.
    Enqueue { notifications: Vec<EventNotification> },
    /// The user's counts changed without a new notification (a read receipt): send each pusher
    /// a counts-only update.
    Badge,
}

/// Queues notifications for the user's pushers. Returns once they are stored durably.
pub async fn enqueue(env: &Env, user_id: &str, notifications: Vec<EventNotification>) -> Result<()> {
    call(env, user_id, &PushRequest::Enqueue { notifications }).await
}

/// Tells the user's pushers that the counts changed.
pub async fn badge(env: &Env, user_id: &str) -> Result<()> {
    call(env, user_id, &PushRequest::Badge).await
}

async fn call(env: &Env, user_id: &str, request: &PushRequest) -> Result<()> {
    let stub = env.durable_object("PUSH_QUEUE")?.id_from_name(user_id)?.get_stub()?;
    let body = serde_json::to_string(request).map_err(|e| internal("push request", e))?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(body.into()));
    let mut res = stub.fetch_with_request(Request::new_with_init("https://push-queue/", &init)?).await?;
    if res.status_code() != 200 {
        return Err(internal("push queue", res.text().await?));
    }
    Ok(())
}

#[durable_object]
pub struct PushQueue {
    #[allow(dead_code)]
    state: State,
}

impl DurableObject for PushQueue {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        match Reply::json(&serde_json::json!({})) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }
}
