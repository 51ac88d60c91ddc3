-- The dashboard splits votes by where their answer was asked (browser or
-- API key), which it finds in the answer's turn event: look events up by
-- message. Postgres has had this index since its first schema.
CREATE INDEX IF NOT EXISTS chat_events_by_message ON chat_events(message_id);
