//! Device list tracking: whose syncs hear that a user's devices or keys changed, and what a sync
//! or `GET /keys/changes` reports as `changed` and `left`.
//!
//! A change is recorded in the device list stream by the write that makes it (the `devices`
//! triggers for added, renamed and deleted devices; key uploads for keys). Then the syncs of the
//! user and of everyone who shares a joined room with them are woken with the stream's head.
//! Memberships need no wake-up of their own: the room's commit wakes its members, and the
//! membership events in the window are what puts users in `changed` and `left`.

use crate::appservice::ephemeral::{self, Stream};
use crate::context::Ctx;
use crate::durable_objects::user_sync::{self, Positions};
use crate::error::Result;
use crate::storage::device_lists::{self, Window};
use crate::storage::{presence, Db};

/// `device_lists` of an incremental sync or `/keys/changes`.
#[derive(Debug, Default)]
pub struct DeviceLists {
    pub changed: Vec<String>,
    pub left: Vec<String>,
}

impl DeviceLists {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

/// What changed for `reader` between the positions `from` and `upto`: one query, and none when
/// neither the events nor the device list stream moved.
pub async fn between(db: &Db, reader: &str, from: &Positions, upto: &Positions) -> Result<DeviceLists> {
    if upto.events <= from.events && upto.device_lists <= from.device_lists {
        return Ok(DeviceLists::default());
    }
    let window = Window { events: (from.events, upto.events), device_lists: (from.device_lists, upto.device_lists) };
    let (changed, left) = device_lists::changes(db, reader, window).await?;
    Ok(DeviceLists { changed, left })
}

/// Wakes, after the response, the syncs of `user_id` and of everyone who shares a joined room
/// with them: `user_id`'s recorded device list change concerns them all.
pub async fn announce(cx: &Ctx, user_id: &str) -> Result<()> {
    let (head, mut watchers) =
        futures::try_join!(device_lists::max_stream_id(&cx.db), presence::co_members(&cx.db, user_id))?;
    if !watchers.iter().any(|w| w == user_id) {
        watchers.push(user_id.to_owned());
    }
    ephemeral::poke(cx, Stream::DeviceLists, Some(watchers.clone()));
    wake(cx, watchers, head);
    Ok(())
}

/// Wakes, after the response, the syncs of `viewer` alone: a change only it sees.
pub async fn announce_to(cx: &Ctx, viewer: &str) -> Result<()> {
    let head = device_lists::max_stream_id(&cx.db).await?;
    wake(cx, vec![viewer.to_owned()], head);
    Ok(())
}

fn wake(cx: &Ctx, users: Vec<String>, head: u64) {
    let positions = Positions { device_lists: head, ..Positions::default() };
    let env = cx.env.clone();
    cx.in_background(async move {
        if let Err(e) = user_sync::notify_many(&env, users, positions).await {
            // A missed wake-up delays a sync until its timeout; the change is recorded.
            crate::log::error(&format!("waking a sync for a device list change: {e:?}"));
        }
    });
}
