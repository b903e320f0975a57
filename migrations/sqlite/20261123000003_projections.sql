-- One row per projector: where it stands in the log and which generation of its tables the
-- stable name (a view) points at. The checkpoint moves in the same transaction as the
-- projector's writes.
CREATE TABLE projections (
    name            TEXT    NOT NULL PRIMARY KEY,
    version         INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    last_error      TEXT,
    error_position  INTEGER,
    updated_at      TEXT    NOT NULL
);
