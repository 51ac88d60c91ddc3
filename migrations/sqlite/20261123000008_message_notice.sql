-- A note shown above an answer (e.g. that a smaller model answered because
-- the day's token budget was spent), kept so it is still there after a reload.
ALTER TABLE messages ADD COLUMN notice TEXT;
