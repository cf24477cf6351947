-- 0002: failed-login counters, shared by every replica so that N replicas
-- do not give an attacker N times the attempts. One row per throttle key
-- (a username or a client address); swept by DeleteExpired like once.

CREATE TABLE login_failures (
    id          bytea  NOT NULL PRIMARY KEY,
    count       bigint NOT NULL,
    last_ns     bigint NOT NULL,
    expires_ns  bigint NOT NULL
);
CREATE INDEX login_failures_expires_ns ON login_failures (expires_ns);
