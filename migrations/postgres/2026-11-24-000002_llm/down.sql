DROP INDEX messages_status;
ALTER TABLE models DROP COLUMN remote_name;
ALTER TABLE models DROP COLUMN description;
