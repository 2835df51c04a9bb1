//! A deactivated user's way out of its rooms: the leaves, sent a batch per alarm.
//!
//! Deactivation hands the object, named by the user ID, every room where the user is joined,
//! invited or knocking, and returns. Each alarm sends the user's leave to [`BATCH`] of them
//! through their writers, side by side, and sets the next alarm while rooms remain. A request has
//! 50 subrequests on the free plan and each leave is one, so no user has too many rooms to leave:
//! an alarm is a request of its own. As in Synapse, each room is tried once; a room that refuses
//! (the user already left it) or fails is logged and skipped.

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use super::room;
use crate::error::{internal, Result};
use crate::http::Reply;

/// Leaves per alarm: well within a request's 50 subrequests.
pub const BATCH: usize = 16;
/// The storage key of the rooms still to leave.
const ROOMS: &str = "rooms";

#[derive(Debug, Serialize, Deserialize)]
struct Leave {
    user_id: String,
    rooms: Vec<String>,
}

/// Has `user_id` leave `rooms`, in the background. Returns once the list is stored.
pub async fn leave_rooms(env: &Env, user_id: &str, rooms: Vec<String>) -> Result<()> {
    if rooms.is_empty() {
        return Ok(());
    }
    let request = Leave { user_id: user_id.to_owned(), rooms };
    match super::post(env, "DEACTIVATION", user_id, "https://deactivation/", &request).await? {
        (200, _) => Ok(()),
        (_, text) => Err(internal("deactivation", text)),
    }
}

#[durable_object]
pub struct Deactivation {
    state: State,
    env: Env,
}

impl DurableObject for Deactivation {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match serde_json::from_str::<Leave>(&req.text().await?) {
            Ok(leave) => self.queue(leave).await,
            Err(e) => Err(internal("deactivation request", e)),
        };
        match outcome.and_then(|()| Reply::json(&json!({}))) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        let Some(mut leave) = storage.get::<Leave>(ROOMS).await? else { return Response::empty() };
        let rest = leave.rooms.split_off(leave.rooms.len().min(BATCH));
        let sends = leave.rooms.iter().map(|room_id| room::leave(&self.env, room_id, &leave.user_id));
        for (room_id, result) in leave.rooms.iter().zip(futures::future::join_all(sends).await) {
            if let Err(e) = result {
                let reason = e.matrix().map(|m| m.message.to_string()).unwrap_or_else(|| format!("{e:?}"));
                crate::log::error(&format!("deactivation of {}: not leaving {room_id}: {reason}", leave.user_id));
            }
        }
        if rest.is_empty() {
            storage.delete(ROOMS).await?;
        } else {
            storage.put(ROOMS, Leave { user_id: leave.user_id, rooms: rest }).await?;
            storage.set_alarm(0).await?;
        }
        Response::empty()
    }
}

impl Deactivation {
    /// Stores the rooms to leave, and sets the alarm for now.
    async fn queue(&self, leave: Leave) -> Result<()> {
        let storage = self.state.storage();
        storage.put(ROOMS, &leave).await?;
        storage.set_alarm(0).await?;
        Ok(())
    }
}
