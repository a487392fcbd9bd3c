-- The passages a chat turn retrieved and gave the model, numbered as the answer cites them.
ALTER TABLE messages ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
