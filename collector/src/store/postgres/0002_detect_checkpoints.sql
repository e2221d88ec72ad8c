-- Detection checkpoints: each host's rule-engine state, so a restart or
-- another collector carries its windows on.
CREATE TABLE detect_checkpoints (
    host TEXT PRIMARY KEY,
    saved_at_ms BIGINT NOT NULL,
    rules_fingerprint TEXT NOT NULL,
    body BYTEA NOT NULL
);
