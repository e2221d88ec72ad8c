-- Leases and the replica register: replicas sharing this database divide
-- the hosts' detection and the fleet-wide jobs through these rows alone.
CREATE TABLE leases (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX leases_owner ON leases(owner, kind);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    seen_at_ms BIGINT NOT NULL,
    rules_fingerprint TEXT NOT NULL,
    contracts_fingerprint TEXT NOT NULL
);
