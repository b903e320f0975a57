-- Aggregate snapshots: a cache of folded state, one row per stream (the newest wins).
CREATE TABLE snapshots (
    stream_id       TEXT        NOT NULL PRIMARY KEY,
    version         BIGINT      NOT NULL,
    schema_version  INTEGER     NOT NULL,
    state           JSONB       NOT NULL,
    taken_at        TIMESTAMPTZ NOT NULL
);
