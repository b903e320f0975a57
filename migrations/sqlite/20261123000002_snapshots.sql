-- Aggregate snapshots: a cache of folded state, one row per stream (the newest wins).
CREATE TABLE snapshots (
    stream_id       TEXT    NOT NULL PRIMARY KEY,
    version         INTEGER NOT NULL,
    schema_version  INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    taken_at        TEXT    NOT NULL
);
