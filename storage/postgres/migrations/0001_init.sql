-- 0001: the first schema. See the package documentation for why strings
-- are bytea and times are bigint nanoseconds.

CREATE TABLE tokens (
    kind        text    NOT NULL,
    signature   bytea   NOT NULL,
    request_id  bytea   NOT NULL,
    client_id   bytea   NOT NULL,
    subject     bytea   NOT NULL,
    created_ns  bigint,
    expires_ns  bigint  NOT NULL,
    active      boolean NOT NULL,
    data        bytea,
    PRIMARY KEY (kind, signature)
);
-- Empty owners are never listed, so they need no index entries.
CREATE INDEX tokens_request_id ON tokens (request_id) WHERE request_id <> '';
CREATE INDEX tokens_subject    ON tokens (subject)    WHERE subject <> '';
CREATE INDEX tokens_client_id  ON tokens (client_id)  WHERE client_id <> '';
CREATE INDEX tokens_expires_ns ON tokens (expires_ns);

-- One-time markers: client-assertion JTIs, SAML assertion IDs.
CREATE TABLE once (
    namespace   bytea  NOT NULL,
    id          bytea  NOT NULL,
    expires_ns  bigint NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX once_expires_ns ON once (expires_ns);

-- Signing keys; private halves arrive sealed by package keys.
CREATE TABLE keys (
    id          text    PRIMARY KEY,
    algorithm   text    NOT NULL,
    created_ns  bigint,
    retire_ns   bigint,
    active      boolean NOT NULL,
    public      bytea   NOT NULL,
    private     bytea   NOT NULL
);

-- Audit events, listed per subject newest first.
CREATE TABLE events (
    subject     bytea  NOT NULL,
    time_ns     bigint NOT NULL,
    id          bytea  NOT NULL,
    type        bytea  NOT NULL,
    client_id   bytea  NOT NULL,
    request_id  bytea  NOT NULL,
    ip          bytea  NOT NULL,
    user_agent  bytea  NOT NULL,
    detail      bytea  NOT NULL,
    PRIMARY KEY (subject, time_ns, id)
);

-- Remembered consents. Scopes are RFC 6749 scope tokens (ASCII).
CREATE TABLE consents (
    subject     bytea  NOT NULL,
    client_id   bytea  NOT NULL,
    scopes      text[] NOT NULL,
    granted_ns  bigint,
    PRIMARY KEY (subject, client_id)
);
