-- Uploaded documents and where each is in ingestion. The vectors live in the
-- vector index; this table is the source of truth for what should be there.
CREATE TABLE documents (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    content_hash     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'parsing', 'chunking', 'embedding', 'indexed', 'failed', 'deleting')),
    error            TEXT,
    title            TEXT,
    pages            INTEGER,
    chunks           INTEGER,
    chunks_embedded  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX documents_by_user ON documents(user_id, created_at DESC);
CREATE INDEX documents_by_status ON documents(status, created_at);
-- The same bytes are indexed once per user (failed or deleted uploads don't count).
CREATE UNIQUE INDEX documents_content_once ON documents(user_id, content_hash)
    WHERE status NOT IN ('failed', 'deleting');

-- The sources an answer was grounded in (JSON array), with citation highlights.
ALTER TABLE messages ADD COLUMN sources TEXT;
