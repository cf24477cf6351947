-- 0007: clients registered at runtime (developer portal, RFC 7591), as
-- opposed to those of the configuration file, which the store never sees.
-- The owner is a developer's subject ('' for a pipeline's registration);
-- an owner's clients are listed oldest first, which the index serves in
-- order. APIs are the catalogue IDs subscribed to, in subscription order.
CREATE TABLE clients (
    id          bytea   NOT NULL PRIMARY KEY,
    owner       bytea   NOT NULL,
    created_ns  bigint,
    updated_ns  bigint,
    apis        bytea[] NOT NULL,
    data        bytea
);
CREATE INDEX clients_owner ON clients (owner, created_ns NULLS FIRST, id);
