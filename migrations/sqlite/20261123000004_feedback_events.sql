-- Thumbs up/down on answers: one vote per user per message, changeable. The
-- vote keeps what the answer was made from (model, variant, and the chunks
-- with their scores and document versions), so quality can be traced to
-- retrieval even after documents change.
CREATE TABLE feedback (
    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rating      INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment     TEXT,
    model       TEXT,
    variant     TEXT,
    retrieval   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX feedback_by_time ON feedback(updated_at);

-- One row per chat turn: stage latencies, usage and outcome.
CREATE TABLE chat_events (
    id                 TEXT PRIMARY KEY NOT NULL,
    at                 INTEGER NOT NULL,
    user_id            TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    variant            TEXT,
    embed_ms           REAL,
    retrieve_ms        REAL,
    prompt_build_ms    REAL,
    queue_ms           REAL,
    ttft_ms            REAL,
    upstream_ttft_ms   REAL,
    total_ms           REAL NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    tokens_estimated   INTEGER NOT NULL,
    tokens_per_s       REAL,
    cache_hit          INTEGER NOT NULL DEFAULT 0,
    retries            INTEGER NOT NULL DEFAULT 0,
    fallback_used      INTEGER NOT NULL DEFAULT 0,
    sources            INTEGER NOT NULL,
    outcome            TEXT NOT NULL,
    error_class        TEXT
);
CREATE INDEX chat_events_by_time ON chat_events(at);
CREATE INDEX chat_events_by_user ON chat_events(user_id, at);
