DROP TABLE settings; DROP TABLE models; DROP TABLE job_runs; DROP TABLE jobs; DROP TABLE plugin_kv;
DROP TABLE plugins; DROP TABLE memory_entries; DROP TABLE chunks; DROP TABLE documents;
DROP TABLE collections; DROP TABLE messages; DROP TABLE chats; DROP TABLE projects; DROP TABLE agents;
DROP TABLE api_keys; DROP TABLE sessions; DROP TABLE users;
