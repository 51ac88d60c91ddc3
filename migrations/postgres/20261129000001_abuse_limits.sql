-- Guests' limits are per address: the address (IPv4, or IPv6 /64) each guest
-- was made from. Accounts made from a guest keep it but no longer count.
ALTER TABLE users ADD COLUMN created_from TEXT;
CREATE INDEX users_by_created_from ON users(created_from) WHERE created_from IS NOT NULL;
-- When the account was last disabled: every replica stops its running answers.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
CREATE INDEX users_by_disabled_at ON users(disabled_at) WHERE disabled_at IS NOT NULL;
-- When ingestion last started on one of the user's documents: the queue
-- serves owners round robin, least recently served first.
ALTER TABLE users ADD COLUMN ingest_served_at BIGINT;

-- Every accepted upload, for the daily quotas (it outlives a deleted
-- document, so deleting doesn't give the quota back). Pruned after two days.
CREATE TABLE upload_log (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bytes    BIGINT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX upload_log_by_user ON upload_log(user_id, at);

-- How many times a document's ingestion was cut short by the server
-- stopping: one that keeps stopping it is failed instead of retried forever.
ALTER TABLE documents ADD COLUMN interruptions BIGINT NOT NULL DEFAULT 0;

-- One-time codes (their SHA-256) that make the first admin of a public
-- deployment; each replica that starts without an admin prints one.
CREATE TABLE setup_codes (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL
);
