-- OpenID tokens a user asked for, to prove its identity to a third party (an integration
-- manager), which asks /_matrix/federation/v1/openid/userinfo. Kept as their SHA-256.
CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX openid_tokens_by_expiry ON openid_tokens (expires_ms);
