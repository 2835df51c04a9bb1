//! An admin's deletion of a room (`DELETE /_synapse/admin/v2/rooms/{roomId}`), carried out a
//! batch per alarm so that a room of any size can be deleted.
//!
//! The object is named by the room ID, so a room has at most one deletion running. The request
//! hands it the job, which it stores together with the room's joined members and local aliases
//! as they were when it started, and records the deletion in D1 (`room_deletions`, status
//! `shutting_down`). Each alarm reads who is still joined, sends [`BATCH`] of them their leave
//! through the room's writer, side by side, and writes the progress to the D1 row. Once nobody is
//! left it removes the aliases, purges the room unless asked not to, and marks the row `complete`
//! (or `failed`, when some members could not be made to leave; the room is then not purged
//! unless `force_purge`).
//!
//! Alarms run at least once, so every step may run again: the members still to leave are read
//! from D1 each time (a repeated leave finds them gone), the aliases and the purge are deletes,
//! and the row's status is written whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

use crate::error::{internal, ErrorKind, MatrixError, Result};
use crate::http::Reply;
use crate::storage::{admin_rooms, aliases, room_deletions, Db};
use crate::time::now_ms;

/// Leaves per alarm: well within an invocation's 50 subrequests.
pub const BATCH: usize = 16;
/// A member whose leave failed this many times is given up on.
const MAX_TRIES: u32 = 3;
/// The storage key of the running job.
const JOB: &str = "job";

/// What the admin asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deletion {
    pub delete_id: String,
    pub room_id: String,
    pub purge: bool,
    pub force_purge: bool,
}

/// A running deletion, as stored between alarms.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    deletion: Deletion,
    /// The joined members when the deletion started.
    members: Vec<String>,
    local_aliases: Vec<String>,
    /// Failed leaves so far, per member.
    tries: BTreeMap<String, u32>,
}

impl Job {
    fn given_up(&self) -> Vec<String> {
        self.tries.iter().filter(|(_, n)| **n >= MAX_TRIES).map(|(m, _)| m.clone()).collect()
    }

    /// Synapse's `shutdown_room` result: who left (the members of the start who are no longer
    /// joined and were not given up on), who could not be made to leave, and the aliases.
    fn result(&self, still_joined: &[String]) -> serde_json::Value {
        let failed = self.given_up();
        let kicked: Vec<&String> =
            self.members.iter().filter(|m| !still_joined.contains(m) && !failed.contains(m)).collect();
        json!({
            "kicked_users": kicked,
            "failed_to_kick_users": failed,
            "local_aliases": self.local_aliases,
            "new_room_id": null,
        })
    }
}

/// Starts the deletion in the background. Refused while the room has one running.
pub async fn start(env: &Env, deletion: &Deletion) -> Result<()> {
    match super::post(env, "ROOM_DELETION", &deletion.room_id, "https://room-deletion/", deletion).await? {
        (200, _) => Ok(()),
        (400, _) => Err(in_progress(&deletion.room_id).into()),
        (_, text) => Err(internal("room deletion", text)),
    }
}

fn in_progress(room_id: &str) -> MatrixError {
    MatrixError::new(ErrorKind::Unknown, format!("Shutdown and purge of {room_id} is already in progress"))
}

#[durable_object]
pub struct RoomDeletion {
    state: State,
    env: Env,
}

impl DurableObject for RoomDeletion {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let outcome = match serde_json::from_str::<Deletion>(&req.text().await?) {
            Ok(deletion) => self.begin(deletion).await,
            Err(e) => Err(internal("room deletion request", e)),
        };
        match outcome.and_then(|()| Reply::json(&json!({}))) {
            Ok(reply) => reply.into_response(None),
            Err(e) => Reply::error(&e).into_response(None),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(e) = self.step().await {
            // The alarm rings again: the step is repeatable.
            crate::log::error(&format!("room deletion: {e:?}"));
            self.state.storage().set_alarm(1000).await?;
        }
        Response::empty()
    }
}

impl RoomDeletion {
    /// Stores the job with the room's members and aliases, records it in D1, and sets the alarm.
    async fn begin(&self, deletion: Deletion) -> Result<()> {
        let storage = self.state.storage();
        if storage.get::<Job>(JOB).await?.is_some() {
            return Err(in_progress(&deletion.room_id).into());
        }
        let db = Db::new(&self.env)?;
        let members = admin_rooms::members(&db, &deletion.room_id).await?;
        let local_aliases = aliases::for_room(&db, &deletion.room_id).await?;
        let job = Job { deletion, members, local_aliases, tries: BTreeMap::new() };
        let d = &job.deletion;
        let result = job.result(&job.members).to_string();
        db.run(room_deletions::insert(
            &db,
            &d.delete_id,
            &d.room_id,
            room_deletions::SHUTTING_DOWN,
            &result,
            None,
            now_ms(),
        )?)
        .await?;
        storage.put(JOB, &job).await?;
        storage.set_alarm(0).await?;
        Ok(())
    }

    /// One batch of leaves, or the end of the deletion.
    async fn step(&self) -> Result<()> {
        let storage = self.state.storage();
        let Some(mut job) = storage.get::<Job>(JOB).await? else { return Ok(()) };
        let db = Db::new(&self.env)?;
        let room_id = job.deletion.room_id.clone();
        let joined = admin_rooms::members(&db, &room_id).await?;
        let given_up = job.given_up();
        let batch: Vec<&String> = joined.iter().filter(|m| !given_up.contains(m)).take(BATCH).collect();
        if batch.is_empty() {
            return self.finish(&db, &job, &joined).await;
        }
        let leaves = batch.iter().map(|member| super::room::leave(&self.env, &room_id, member));
        let mut left = Vec::new();
        for (member, outcome) in batch.iter().zip(futures::future::join_all(leaves).await) {
            match outcome {
                Ok(()) => left.push((*member).clone()),
                Err(e) => {
                    crate::log::error(&format!("deleting {room_id}: {member} did not leave: {e:?}"));
                    *job.tries.entry((*member).clone()).or_default() += 1;
                }
            }
        }
        let still_joined: Vec<String> = joined.into_iter().filter(|m| !left.contains(m)).collect();
        let d = &job.deletion;
        let progress = job.result(&still_joined).to_string();
        db.run(room_deletions::update(&db, &d.delete_id, room_deletions::SHUTTING_DOWN, &progress, None)?).await?;
        storage.put(JOB, &job).await?;
        storage.set_alarm(0).await?;
        Ok(())
    }

    /// Nobody is left to leave: the aliases go, the room is purged, and the row says how it ended.
    async fn finish(&self, db: &Db, job: &Job, still_joined: &[String]) -> Result<()> {
        let d = &job.deletion;
        let failed = !job.given_up().is_empty();
        let mut statements = Vec::new();
        for alias in &job.local_aliases {
            statements.push(aliases::delete(db, alias)?);
        }
        if d.purge && (!failed || d.force_purge) {
            statements.extend(room_deletions::purge(db, &d.room_id)?);
        }
        let (status, error) = match failed {
            false => (room_deletions::COMPLETE, None),
            true => (room_deletions::FAILED, Some("Some members could not be made to leave")),
        };
        let result = job.result(still_joined).to_string();
        statements.push(room_deletions::update(db, &d.delete_id, status, &result, error)?);
        db.batch(statements).await?;
        self.state.storage().delete(JOB).await?;
        Ok(())
    }
}
