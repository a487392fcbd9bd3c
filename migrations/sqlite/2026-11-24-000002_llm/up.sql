-- Model registry fields of seed 004 (description) and the upstream model id of remote models.
ALTER TABLE models ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE models ADD COLUMN remote_name TEXT;
-- One running turn per chat is found by its streaming assistant message.
CREATE INDEX messages_status ON messages (status);
