-- API keys: bearer tokens an account makes for scripts and other clients.
-- Only a SHA-256 of the secret is kept (the secret is 256 random bits, so a
-- slow hash adds nothing); the prefix identifies a key in the list.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, created_at);
