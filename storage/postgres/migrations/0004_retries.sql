-- 0004: the answer a refresh produced, kept next to the redeemed token for
-- the retry window (storage.Retry). It goes with its token: revoking the
-- grant or deleting the token deletes it. expires_ns is the end of the
-- window, swept by DeleteExpired like the other tables.
CREATE TABLE token_retries (
    kind        text   NOT NULL,
    signature   bytea  NOT NULL,
    successor   bytea  NOT NULL,
    expires_ns  bigint NOT NULL,
    sealed      bytea,
    PRIMARY KEY (kind, signature),
    FOREIGN KEY (kind, signature) REFERENCES tokens (kind, signature) ON DELETE CASCADE
);
CREATE INDEX token_retries_expires_ns ON token_retries (expires_ns);
