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
ALTER TABLE messages ADD COLUMN stop_requested BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
-- The replica generating an answer says it is alive every few seconds; an
-- answer whose replica fell silent (a crash) is given up on within a minute
-- or two instead of blocking its conversation.
ALTER TABLE messages ADD COLUMN heartbeat_at BIGINT;

ALTER TABLE conversations ADD COLUMN leaf_id TEXT;
UPDATE conversations SET leaf_id = (
    SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id
    ORDER BY m.seq DESC LIMIT 1
);
ALTER TABLE conversations ADD COLUMN pinned BIGINT NOT NULL DEFAULT 0;

-- A regenerated answer is a quality signal of the one it replaces.
ALTER TABLE chat_events ADD COLUMN regenerated BOOLEAN NOT NULL DEFAULT FALSE;

-- Full-text search over the user's messages (titles are matched directly).
-- Answers are indexed once they stop streaming (the search asks the same).
CREATE INDEX messages_fts ON messages USING gin (to_tsvector('english', content))
    WHERE status != 'streaming';

-- Read-only links to a conversation as it was when shared (revoking one
-- deletes it).
CREATE TABLE shares (
    id               TEXT PRIMARY KEY NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    snapshot         TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX shares_by_user ON shares(user_id, created_at DESC);
