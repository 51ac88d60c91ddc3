-- Follow-ups are searched as a standalone query (issue 12): the query is
-- kept with the answer (the sources panel shows it after a reload), and the
-- rewrite is its own stage in the turn events.
ALTER TABLE messages ADD COLUMN search_query TEXT;
ALTER TABLE chat_events ADD COLUMN rewrite_ms REAL;
ALTER TABLE chat_events ADD COLUMN rewrite_source TEXT;
