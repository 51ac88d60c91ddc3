-- Issue 15. Turns asked through the OpenAI-compatible API (/v1) are kept
-- like the browser's (so votes, the cache, the quality view and exports
-- work on them), in conversations of their own that the browser's list
-- leaves out. Turn events say where they came from and with which key; the
-- key's name is copied, so a revoked key's traffic stays readable.
ALTER TABLE conversations ADD COLUMN source TEXT NOT NULL DEFAULT 'browser';
ALTER TABLE conversations ADD COLUMN api_key_id TEXT;
ALTER TABLE chat_events ADD COLUMN source TEXT NOT NULL DEFAULT 'browser';
ALTER TABLE chat_events ADD COLUMN api_key_id TEXT;
ALTER TABLE chat_events ADD COLUMN api_key_name TEXT;
