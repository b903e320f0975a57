-- Per-subject keys for personal data (crypto-shredding): each key is stored wrapped
-- (AES-256-GCM) by the master key. Forgetting a subject deletes its key; the row stays as a
-- tombstone so a later seal cannot silently make a new key for a forgotten subject.
CREATE TABLE subject_keys (
    subject_id   BLOB NOT NULL PRIMARY KEY,
    wrapped_key  BLOB,
    created_at   TEXT NOT NULL,
    forgotten_at TEXT
);

-- When each API key was last used (operational state, not an event: it changes on every
-- request). Written at most once a minute per key.
CREATE TABLE api_key_usage (
    key_id       BLOB NOT NULL PRIMARY KEY,
    tenant_id    BLOB NOT NULL,
    last_used_at TEXT NOT NULL
);
