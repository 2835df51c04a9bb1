-- The content repository. The bytes are in the R2 bucket `MEDIA` under the media ID, and each
-- thumbnail under `{media_id}/thumbnail/{width}x{height}-{method}`; D1 keeps who uploaded what.
CREATE TABLE media (
    media_id          TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    -- Set when an upload starts: an async upload (`/create`) is pending while it is NULL, and
    -- a second upload to the same ID is refused once it is set.
    upload_started_ms INTEGER,
    -- Set once the bytes are in R2: only then is the media served.
    size              INTEGER,
    content_type      TEXT,
    upload_name       TEXT,
    -- A pending async upload's deadline; NULL for everything else.
    unused_expires_ms INTEGER,
    quarantined       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- A user's pending async uploads, counted at each `/create`.
CREATE INDEX media_pending ON media (user_id, unused_expires_ms) WHERE upload_started_ms IS NULL;
