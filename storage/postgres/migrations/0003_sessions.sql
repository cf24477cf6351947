-- 0003: server-side ends of login sessions, shared by every replica, so a
-- signed-out session cookie stops working everywhere. Both tables are
-- swept by DeleteExpired like once.

-- Session IDs signed out one at a time, kept until the session would have
-- expired anyway.
CREATE TABLE revoked_sessions (
    id          bytea  NOT NULL PRIMARY KEY,
    expires_ns  bigint NOT NULL
);
CREATE INDEX revoked_sessions_expires_ns ON revoked_sessions (expires_ns);

-- "Sign out everywhere": sessions of the subject that started at or before
-- ended_ns (NULL for the zero time) are void, until expires_ns (the end of
-- the longest session that could have started before ended_ns).
CREATE TABLE subject_sessions_ended (
    subject     bytea  NOT NULL PRIMARY KEY,
    ended_ns    bigint,
    expires_ns  bigint NOT NULL
);
CREATE INDEX subject_sessions_ended_expires_ns ON subject_sessions_ended (expires_ns);
