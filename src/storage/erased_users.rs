//! `erased_users`: accounts deactivated with `erase`, as Synapse's table of that name. Event reads
//! join it (`events::COLUMNS`), so that an erased sender's events are served redacted to readers
//! who were not in the room when they were sent.

use super::{Db, Statement};
use crate::error::Result;

const INSERT: &str = "INSERT INTO erased_users (user_id) VALUES (?1) ON CONFLICT DO NOTHING";

pub fn insert(db: &Db, user_id: &str) -> Result<Statement> {
    db.prepare(INSERT, &[&user_id])
}
