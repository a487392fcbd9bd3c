-- The plugin host: one row per installed plugin (its validated manifest, where it stands),
-- its key-value data, and the users it is granted to. The placeholder tables of the first
-- migration never held data.
DROP TABLE plugin_kv;
DROP TABLE plugins;

CREATE TABLE plugins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The manifest's name: the plugin's key in every door.
    name TEXT NOT NULL UNIQUE,
    version TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The admin who installed (or last upgraded) it.
    installed_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    -- disabled|stopped|running|failed: what every process converges its instances to.
    state TEXT NOT NULL,
    -- Why it failed (state = failed).
    failure TEXT,
    -- The validated manifest, as JSON.
    manifest TEXT NOT NULL,
    -- SHA-256 of the module; with name and version it names the files under the data dir.
    sha256 TEXT NOT NULL,
    -- The module itself, so every process sharing the database can run it (the files under
    -- the data dir are a cache of it, plus the bundle's other files where it was installed).
    module BLOB NOT NULL,
    -- The trusted key (base64) whose signature the bundle carried.
    signed_by TEXT,
    -- Every user may call it; otherwise admins and the users in plugin_grants.
    granted_to_all BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- A plugin's own key-value namespace; kept across upgrades, removed with the plugin.
CREATE TABLE plugin_kv (
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (plugin_id, key)
);

CREATE TABLE plugin_grants (
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (plugin_id, user_id)
);
CREATE INDEX plugin_grants_user ON plugin_grants(user_id);

-- The plugin tools an agent may call in its turns (names; JSON list).
ALTER TABLE agents ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
