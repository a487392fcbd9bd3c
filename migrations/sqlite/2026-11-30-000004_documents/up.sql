-- Documents and retrieval. The placeholder tables of the first migration never held data.
DROP TABLE chunks;
DROP TABLE documents;
DROP TABLE collections;

-- Every document belongs to one collection: a named one, the implicit one of an agent or a
-- chat, the admin's watched folders (`source`) or a user's memory.
CREATE TABLE collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- named|agent|chat|source|memory
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    agent_id BIGINT REFERENCES agents(id) ON DELETE CASCADE,
    chat_id BIGINT REFERENCES chats(id) ON DELETE CASCADE,
    -- The embedding model searches use; vectors of another model are a re-embedding underway.
    embed_model TEXT NOT NULL,
    -- Bumped in the transaction of every change of its vectors: a process whose index
    -- reflects an older version brings it up to date before it searches.
    index_version BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (owner_id, kind, name)
);
CREATE INDEX collections_agent ON collections (agent_id);
CREATE INDEX collections_chat ON collections (chat_id);

CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    -- pdf|docx|text|markdown|html|code|data|image, decided from the content.
    kind TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    pages INTEGER,
    -- queued|extracting|embedding|indexed|failed|stored
    status TEXT NOT NULL,
    error TEXT,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    chunks_embedded INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    -- A watched folder's file: its path under the folder.
    source_path TEXT,
    -- The ingestion job (jobs are pruned, so no foreign key).
    job_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (collection_id, sha256)
);
CREATE INDEX documents_owner ON documents (owner_id, id);
CREATE INDEX documents_collection ON documents (collection_id, id);
CREATE INDEX documents_status ON documents (status);

-- The uploaded bytes, in the database so every server process reads them.
CREATE TABLE document_blobs (
    document_id BIGINT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    bytes BLOB NOT NULL
);

-- The text extraction produced: chunk spans are character offsets into it.
CREATE TABLE document_texts (
    document_id BIGINT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    -- JSON [[page, start, end], ...] for paged formats.
    pages TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    -- Unicode scalar offsets into document_texts.text: text = extracted[char_start..char_end].
    char_start BIGINT NOT NULL,
    char_end BIGINT NOT NULL,
    page INTEGER,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);
CREATE INDEX chunks_collection ON chunks (collection_id, id);

-- One vector per chunk and model: a re-embedding writes the new model's beside the old.
CREATE TABLE chunk_vectors (
    chunk_id BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    -- little-endian f32, unit length
    embedding BLOB NOT NULL,
    PRIMARY KEY (chunk_id, model)
);
CREATE INDEX chunk_vectors_collection ON chunk_vectors (collection_id, model, chunk_id);

-- Keyword search: FTS5 over the chunks' text, kept in step by triggers.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
