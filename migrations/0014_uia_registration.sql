-- A registration's auth session remembers the parameters of its requests (the password only as
-- its hash) and, once complete, the user it registered, so that a replay of it is answered
-- with the same account, as Synapse answers.
ALTER TABLE uia_sessions ADD COLUMN params TEXT;
ALTER TABLE uia_sessions ADD COLUMN registered_user_id TEXT;
