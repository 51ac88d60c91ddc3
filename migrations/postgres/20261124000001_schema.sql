-- The schema of migrations/sqlite/ (through …08) for Postgres: the same
-- tables and columns, with Postgres types (BIGINT counts and millisecond
-- timestamps, DOUBLE PRECISION latencies, BOOLEAN flags). JSON stays TEXT so
-- both backends read and write it the same way.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    created_at     BIGINT NOT NULL,
    -- A user without a username is a guest; signing up keeps its chats and documents.
    username       TEXT,
    password_hash  TEXT,
    role           TEXT NOT NULL DEFAULT 'guest' CHECK (role IN ('guest', 'user', 'admin')),
    disabled       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX users_by_username ON users (lower(username)) WHERE username IS NOT NULL;

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX conversations_by_user ON conversations(user_id, updated_at DESC);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY NOT NULL,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq                BIGINT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'incomplete', 'stopped')),
    error              TEXT,
    model              TEXT,
    prompt_tokens      BIGINT,
    completion_tokens  BIGINT,
    ttft_ms            BIGINT,
    total_ms           BIGINT,
    created_at         BIGINT NOT NULL,
    -- The sources the answer was grounded in (JSON array).
    sources            TEXT,
    -- A note shown above the answer (e.g. that a smaller model answered).
    notice             TEXT,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX messages_by_created ON messages(created_at);

CREATE TABLE documents (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    content_hash     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'parsing', 'chunking', 'embedding', 'indexed', 'failed', 'deleting')),
    error            TEXT,
    title            TEXT,
    pages            BIGINT,
    chunks           BIGINT,
    chunks_embedded  BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX documents_by_user ON documents(user_id, created_at DESC);
CREATE INDEX documents_by_status ON documents(status, created_at);
CREATE UNIQUE INDEX documents_content_once ON documents(user_id, content_hash)
    WHERE status NOT IN ('failed', 'deleting');

CREATE TABLE feedback (
    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rating      BIGINT NOT NULL CHECK (rating IN (-1, 1)),
    comment     TEXT,
    model       TEXT,
    variant     TEXT,
    retrieval   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX feedback_by_time ON feedback(updated_at);

CREATE TABLE chat_events (
    id                 TEXT PRIMARY KEY NOT NULL,
    at                 BIGINT NOT NULL,
    user_id            TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    message_id         TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    variant            TEXT,
    embed_ms           DOUBLE PRECISION,
    retrieve_ms        DOUBLE PRECISION,
    prompt_build_ms    DOUBLE PRECISION,
    queue_ms           DOUBLE PRECISION,
    ttft_ms            DOUBLE PRECISION,
    upstream_ttft_ms   DOUBLE PRECISION,
    total_ms           DOUBLE PRECISION NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    tokens_estimated   BOOLEAN NOT NULL,
    tokens_per_s       DOUBLE PRECISION,
    cache_hit          BOOLEAN NOT NULL DEFAULT FALSE,
    retries            BIGINT NOT NULL DEFAULT 0,
    fallback_used      BOOLEAN NOT NULL DEFAULT FALSE,
    sources            BIGINT NOT NULL,
    outcome            TEXT NOT NULL,
    error_class        TEXT
);
CREATE INDEX chat_events_by_time ON chat_events(at);
CREATE INDEX chat_events_by_user ON chat_events(user_id, at);
CREATE INDEX chat_events_by_message ON chat_events(message_id);

CREATE TABLE response_cache (
    key                TEXT PRIMARY KEY NOT NULL,
    model              TEXT NOT NULL,
    answer             TEXT NOT NULL,
    sources            TEXT,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL
);
CREATE INDEX response_cache_by_expiry ON response_cache(expires_at);

CREATE TABLE response_cache_documents (
    key          TEXT NOT NULL REFERENCES response_cache(key) ON DELETE CASCADE,
    document_id  TEXT NOT NULL,
    PRIMARY KEY (key, document_id)
);
CREATE INDEX response_cache_by_document ON response_cache_documents(document_id);

CREATE TABLE experiment_exposures (
    experiment  TEXT NOT NULL,
    variant     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    turns       BIGINT NOT NULL,
    PRIMARY KEY (experiment, user_id)
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    secret_sha256  TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, created_at);
