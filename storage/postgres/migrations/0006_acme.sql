-- 0006: named blobs (ACME certificates and the account key, sealed by the
-- caller) and leases, so that of several replicas one orders a certificate
-- and the others read it here. Leases are overwritten in place and few (one
-- per certificate name), so they are not swept.
CREATE TABLE blobs (
    name  bytea NOT NULL PRIMARY KEY,
    data  bytea NOT NULL
);

CREATE TABLE leases (
    name        bytea  NOT NULL PRIMARY KEY,
    holder      bytea  NOT NULL,
    expires_ns  bigint NOT NULL
);
