DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_insert;
DROP TABLE chunks_fts;
DROP TABLE chunk_vectors;
DROP TABLE chunks;
DROP TABLE document_texts;
DROP TABLE document_blobs;
DROP TABLE documents;
DROP TABLE collections;
CREATE TABLE collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    embedding_model TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    index_watermark BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    collection_id BIGINT REFERENCES collections(id) ON DELETE CASCADE,
    entity_type TEXT,
    entity_id BIGINT,
    filename TEXT NOT NULL,
    storage_name TEXT NOT NULL UNIQUE,
    mime_type TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    pages INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX documents_owner ON documents(owner_id);
CREATE INDEX documents_collection ON documents(collection_id);

CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection_id BIGINT REFERENCES collections(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    span_start BIGINT NOT NULL,
    span_end BIGINT NOT NULL,
    page INTEGER,
    embedding BLOB,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX chunks_document ON chunks(document_id, ordinal);
CREATE INDEX chunks_collection ON chunks(collection_id, id);
