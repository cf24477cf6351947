-- 0005: the revocation feed (storage.Revocation). seq comes from the one
-- row of revocation_state, updated in the transaction that records the
-- event: a second writer waits on that row until the first commits, so seq
-- order is commit order and a reader resuming after seq n misses nothing
-- that commits later (a sequence object would not give that).
CREATE TABLE revocation_state (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    head   bigint  NOT NULL,
    floor  bigint  NOT NULL
);
INSERT INTO revocation_state (one, head, floor) VALUES (true, 0, 0);

CREATE TABLE revocations (
    seq         bigint PRIMARY KEY,
    time_ns     bigint NOT NULL,
    kind        text   NOT NULL,
    id          bytea  NOT NULL,
    subject     bytea  NOT NULL,
    client_id   bytea  NOT NULL,
    until_ns    bigint NOT NULL,
    -- kept until both until_ns and the retention have passed
    expires_ns  bigint NOT NULL
);
CREATE INDEX revocations_expires_ns ON revocations (expires_ns);
