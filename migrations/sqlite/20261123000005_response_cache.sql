-- Answers kept for identical requests (same model, prompt template,
-- normalised question, conversation so far, retrieved chunks with their
-- document versions, and sampling parameters), until they expire or a
-- document they used is deleted.
CREATE TABLE response_cache (
    key                TEXT PRIMARY KEY NOT NULL,
    model              TEXT NOT NULL,
    answer             TEXT NOT NULL,
    sources            TEXT,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL
);
CREATE INDEX response_cache_by_expiry ON response_cache(expires_at);

CREATE TABLE response_cache_documents (
    key          TEXT NOT NULL REFERENCES response_cache(key) ON DELETE CASCADE,
    document_id  TEXT NOT NULL,
    PRIMARY KEY (key, document_id)
);
CREATE INDEX response_cache_by_document ON response_cache_documents(document_id);
