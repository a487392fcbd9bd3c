ALTER TABLE messages DROP COLUMN sources;
