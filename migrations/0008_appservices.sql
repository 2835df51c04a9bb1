-- Application services, added by `npm run appservice -- add FILE`. The registration is JSON,
-- without its as_token: only the token's SHA-256 is kept. The hs_token is kept as it is, since
-- the server sends it to the service.
CREATE TABLE appservices (
    id            TEXT PRIMARY KEY,
    as_token_hash TEXT NOT NULL UNIQUE,
    hs_token      TEXT NOT NULL UNIQUE,
    sender        TEXT NOT NULL,              -- @sender_localpart:server_name
    registration  TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;

-- The service's sender exists as soon as the service does, in the same statement.
CREATE TRIGGER appservices_sender AFTER INSERT ON appservices
BEGIN
    INSERT OR IGNORE INTO users (user_id, password_hash, is_guest, created_ms)
    VALUES (NEW.sender, NULL, 0, NEW.created_ms);
END;
