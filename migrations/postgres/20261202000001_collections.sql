-- Issue 14. Documents live in collections; a collection is private to its
-- owner or shared with members (read: retrieval and citations; write: also
-- upload, replace, delete) or with every signed-in account. A user's private
-- collection has the user's id as its id, so documents from before are
-- already in the right one.
CREATE TABLE collections (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    private     BIGINT NOT NULL DEFAULT 0,
    -- What every signed-in account (not guests) may do: NULL, 'read', 'write'.
    everyone    TEXT CHECK (everyone IN ('read', 'write')),
    created_at  BIGINT NOT NULL,
    -- Set when deleted: gone from every search at once; its documents'
    -- vectors are removed in the background, then the row.
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX collections_private_once ON collections(owner_id) WHERE private = 1;
CREATE INDEX collections_shared_with_everyone ON collections(everyone) WHERE everyone IS NOT NULL;
INSERT INTO collections (id, name, owner_id, private, created_at)
    SELECT id, 'My documents', id, 1, created_at FROM users;

CREATE TABLE collection_members (
    collection_id  TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access         TEXT NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (collection_id, user_id)
);
CREATE INDEX collection_members_by_user ON collection_members(user_id);

-- Users the admin allows to make shared collections (admins always may).
ALTER TABLE users ADD COLUMN can_share BIGINT NOT NULL DEFAULT 0;

-- A row is one build of one version of a document. Uploading a file with the
-- same name into the same collection adds a version (same lineage); an
-- admin's re-index adds a build of the same version. The newest indexed one
-- answers; the others are kept (votes and events point at them) with their
-- vectors removed (`purged_at`).
ALTER TABLE documents ADD COLUMN collection_id TEXT REFERENCES collections(id) ON DELETE CASCADE;
UPDATE documents SET collection_id = user_id;
ALTER TABLE documents ADD COLUMN lineage_id TEXT;
UPDATE documents SET lineage_id = id;
ALTER TABLE documents ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- 1 while a re-index build is being made (it may repeat the content).
ALTER TABLE documents ADD COLUMN building BIGINT NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN superseded_at BIGINT;
ALTER TABLE documents ADD COLUMN purged_at BIGINT;
-- Which embedding model and chunking settings made its vectors; NULL for
-- documents from before (the server fills it in at start).
ALTER TABLE documents ADD COLUMN embedder TEXT;
ALTER TABLE documents ADD COLUMN chunker TEXT;
DROP INDEX documents_content_once;
CREATE UNIQUE INDEX documents_content_once ON documents(collection_id, content_hash)
    WHERE status NOT IN ('failed', 'deleting') AND superseded_at IS NULL AND building = 0;
-- The swap clock: every swap of a version (or build) ticks it once, in the
-- swap's transaction. A build answers from the tick that swapped it in until
-- the tick that replaced it; a question sees the builds answering at the
-- tick it read, so it sees exactly one build of each document, whatever
-- swaps happen while it searches.
CREATE TABLE swap_clock (
    id    BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    tick  BIGINT NOT NULL
);
INSERT INTO swap_clock (id, tick) VALUES (1, 0);
ALTER TABLE documents ADD COLUMN answering_from BIGINT;
ALTER TABLE documents ADD COLUMN answering_until BIGINT;
UPDATE documents SET answering_from = 0 WHERE status = 'indexed';
-- Failed uploads from before had their vectors removed.
UPDATE documents SET purged_at = updated_at WHERE status = 'failed';
CREATE INDEX documents_by_collection ON documents(collection_id, name);
CREATE INDEX documents_by_lineage ON documents(lineage_id, version);
CREATE INDEX documents_to_purge ON documents(superseded_at) WHERE superseded_at IS NOT NULL AND purged_at IS NULL;

-- Which collections a conversation searches (JSON array of ids); NULL: all
-- the user may read at the moment of the question.
ALTER TABLE conversations ADD COLUMN scope TEXT;

-- The best passage's similarity to the question (cosine of the embeddings),
-- for the operators' knowledge gaps.
ALTER TABLE chat_events ADD COLUMN top_score DOUBLE PRECISION;
ALTER TABLE chat_events ADD COLUMN searched BOOLEAN NOT NULL DEFAULT FALSE;
