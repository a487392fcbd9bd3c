ALTER TABLE agents DROP COLUMN tools;
DROP TABLE plugin_grants;
DROP TABLE plugin_kv;
DROP TABLE plugins;
CREATE TABLE plugins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    version TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    state TEXT NOT NULL DEFAULT 'disabled',
    manifest TEXT NOT NULL,
    wasm_sha256 TEXT NOT NULL,
    storage_name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE plugin_kv (
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (plugin_id, key)
);
