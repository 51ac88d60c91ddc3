-- Issue 13. Answers have versions and questions have edits: messages form a
-- tree (each message's parent is the one it follows), and the conversation
-- remembers the leaf of the branch it shows. Earlier conversations are one
-- straight branch.
ALTER TABLE messages ADD COLUMN parent_id TEXT;
UPDATE messages SET parent_id = (
    SELECT p.id FROM messages p
    WHERE p.conversation_id = messages.conversation_id AND p.seq < messages.seq
    ORDER BY p.seq DESC LIMIT 1
);
CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id);
-- Stop pressed on a replica that isn't generating the answer: the replica
-- that is sees it within a second.
ALTER TABLE messages ADD COLUMN stop_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
-- The replica generating an answer says it is alive every few seconds; an
-- answer whose replica fell silent (a crash) is given up on within a minute
-- or two instead of blocking its conversation.
ALTER TABLE messages ADD COLUMN heartbeat_at INTEGER;

ALTER TABLE conversations ADD COLUMN leaf_id TEXT;
UPDATE conversations SET leaf_id = (
    SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id
    ORDER BY m.seq DESC LIMIT 1
);
ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;

-- A regenerated answer is a quality signal of the one it replaces.
ALTER TABLE chat_events ADD COLUMN regenerated INTEGER NOT NULL DEFAULT 0;

-- Full-text search over the user's messages (titles are matched directly).
-- An index row shares its message's rowid (the app never VACUUMs, which
-- could renumber them). Answers are indexed once they stop streaming, so
-- the quarter-second saves of a growing answer don't touch the index.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    conversation_id UNINDEXED,
    tokenize = 'porter unicode61'
);
INSERT INTO messages_fts (rowid, content, conversation_id)
    SELECT rowid, content, conversation_id FROM messages WHERE status != 'streaming';
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status != 'streaming'
BEGIN
    INSERT INTO messages_fts (rowid, content, conversation_id)
        VALUES (new.rowid, new.content, new.conversation_id);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
    WHEN old.status != 'streaming' OR new.status != 'streaming'
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
    INSERT INTO messages_fts (rowid, content, conversation_id)
        SELECT new.rowid, new.content, new.conversation_id WHERE new.status != 'streaming';
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
END;

-- Read-only links to a conversation as it was when shared (revoking one
-- deletes it).
CREATE TABLE shares (
    id               TEXT PRIMARY KEY NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    snapshot         TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX shares_by_user ON shares(user_id, created_at DESC);
