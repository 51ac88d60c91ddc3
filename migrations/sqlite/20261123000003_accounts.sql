-- Accounts. A user without a username is a guest (created on first use, no
-- password); signing up turns the guest into an account and keeps its chats
-- and documents.
ALTER TABLE users ADD COLUMN username TEXT;
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'guest'
    CHECK (role IN ('guest', 'user', 'admin'));
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX users_by_username ON users(username COLLATE NOCASE)
    WHERE username IS NOT NULL;

-- Token budgets add up a user's tokens per day.
CREATE INDEX messages_by_created ON messages(created_at);
