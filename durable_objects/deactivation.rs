//! A user's membership changes across all its rooms, sent a batch per alarm: the leaves of a
//! deactivated user, and the new member events of a profile change.
//!
//! The worker hands the object, named by the user ID, the rooms and the change, and returns.
//! Each alarm sends the change to [`BATCH`] of the rooms through their writers, side by side, and
//! sets the next alarm while rooms remain. A request has 50 subrequests on the free plan and each
//! room is one, so no user has too many rooms: an alarm is a request of its own. A new list
//! replaces the one in progress, as Synapse cancels a profile update for a newer one (and
//! deactivation supersedes a profile update). As in Synapse, each room is tried once; a room that
//! refuses (the user already left it) or fails is logged and skipped.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use super::room::{self, RoomRequest};
use crate::error::{internal, Result};
use crate::http::Reply;
use crate::room::pdu::EventTemplate;
use crate::storage::{current_state, profiles, Db};

/// Rooms per alarm: well within a request's 50 subrequests.
pub const BATCH: usize = 16;
/// The storage key of the rooms still to change.
const ROOMS: &str = "rooms";

/// What happens in each room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    /// The user leaves (deactivation).
    #[default]
    Leave,
    /// The user's join is sent again with its current display name and avatar, where they
    /// differ from the room's member event.
    Profile,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sweep {
    user_id: String,
    rooms: Vec<String>,
    #[serde(default)]
    change: Change,
}

/// Has `user_id` leave `rooms`, in the background. Returns once the list is stored.
pub async fn leave_rooms(env: &Env, user_id: &str, rooms: Vec<String>) -> Result<()> {
    hand_over(env, Sweep { user_id: user_id.to_owned(), rooms, change: Change::Leave }).await
}

/// Brings `user_id`'s member events in `rooms` (its joined rooms) up to date with its profile,
/// in the background, as Synapse does after a change of display name or avatar.
pub async fn update_profile(env: &Env, user_id: &str, rooms: Vec<String>) -> Result<()> {
    hand_over(env, Sweep { user_id: user_id.to_owned(), rooms, change: Change::Profile }).await
}

async fn hand_over(env: &Env, sweep: Sweep) -> Result<()> {
    if sweep.rooms.is_empty() {
        return Ok(());
    }
    match super::post(env, "DEACTIVATION", &sweep.user_id, "https://deactivation/", &sweep).await? {
        (200, _) => Ok(()),
        (_, text) => Err(internal("membership sweep", text)),
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
        let outcome = match serde_json::from_str::<Sweep>(&req.text().await?) {
            Ok(sweep) => self.queue(sweep).await,
            Err(e) => Err(internal("membership sweep request", e)),
        };
        match outcome.and_then(|()| Reply::json(&json!({}))) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        let Some(mut sweep) = storage.get::<Sweep>(ROOMS).await? else { return Response::empty() };
        let rest = sweep.rooms.split_off(sweep.rooms.len().min(BATCH));
        let contents = match self.contents(&sweep).await {
            Ok(contents) => contents,
            Err(e) => {
                crate::log::error(&format!("membership sweep of {}: {e:?}", sweep.user_id));
                Vec::new()
            }
        };
        let sends = contents.iter().map(|(room_id, content)| self.send(&sweep.user_id, room_id, content));
        for ((room_id, _), result) in contents.iter().zip(futures::future::join_all(sends).await) {
            if let Err(e) = result {
                let reason = e.matrix().map(|m| m.message.to_string()).unwrap_or_else(|| format!("{e:?}"));
                crate::log::error(&format!("membership of {} in {room_id} not changed: {reason}", sweep.user_id));
            }
        }
        if rest.is_empty() {
            storage.delete(ROOMS).await?;
        } else {
            storage.put(ROOMS, Sweep { rooms: rest, ..sweep }).await?;
            storage.set_alarm(0).await?;
        }
        Response::empty()
    }
}

impl Deactivation {
    /// Stores the rooms to change, and sets the alarm for now.
    async fn queue(&self, sweep: Sweep) -> Result<()> {
        let storage = self.state.storage();
        storage.put(ROOMS, &sweep).await?;
        storage.set_alarm(0).await?;
        Ok(())
    }

    /// The member event content to send in each room of the batch: a leave everywhere, or a
    /// join with the current profile where the user is joined and its event differs.
    async fn contents(&self, sweep: &Sweep) -> Result<Vec<(String, Map<String, Value>)>> {
        if sweep.change == Change::Leave {
            let leave = json!({"membership": "leave"});
            return Ok(sweep
                .rooms
                .iter()
                .map(|r| (r.clone(), leave.as_object().cloned().unwrap_or_default()))
                .collect());
        }
        let db = Db::new(&self.env)?;
        let (fields, current) = futures::try_join!(
            profiles::membership_fields(&db, &sweep.user_id),
            current_state::joined_member_contents(&db, &sweep.user_id, &sweep.rooms),
        )?;
        let mut join = Map::new();
        join.insert("membership".into(), "join".into());
        join.extend(fields);
        let wanted = Value::Object(join.clone());
        Ok(current.into_iter().filter(|(_, now)| *now != wanted).map(|(room_id, _)| (room_id, join.clone())).collect())
    }

    async fn send(&self, user_id: &str, room_id: &str, content: &Map<String, Value>) -> Result<()> {
        let room_id = ruma_common::RoomId::parse(room_id).map_err(|e| internal("stored room ID", e))?;
        let user = ruma_common::UserId::parse(user_id).map_err(|e| internal("stored user ID", e))?;
        let content = serde_json::from_value(Value::Object(content.clone())).map_err(|e| internal("membership", e))?;
        let template = EventTemplate {
            kind: "m.room.member".into(),
            state_key: Some(user_id.into()),
            sender: user,
            content,
            redacts: None,
        };
        let request = RoomRequest::Send { room_id: room_id.clone(), template, txn: None, facts: Default::default() };
        room::call(&self.env, room_id.as_str(), &request).await.map(|_| ())
    }
}
