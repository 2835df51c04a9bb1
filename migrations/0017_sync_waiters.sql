-- Users whose UserSync object may hold a waiting sync, until when: fan-outs wake only them
-- (durable_objects/user_sync.rs). An object renews its lease before the lease could run out
-- under a waiter, and treats a lapsed lease as a restart, so a skipped wake-up is never missed.
CREATE TABLE sync_waiters (
    user_id  TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
