-- The event store: one append-only table that is both the global log and every stream.
-- SQLite has one writer at a time, so positions assigned as max + 1 inside the write
-- transaction are dense and in commit order without further work.

CREATE TABLE events (
    position        INTEGER NOT NULL PRIMARY KEY CHECK (position > 0),
    event_id        BLOB    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version > 0),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    tenant_id       BLOB,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE event_commands (
    command_id  BLOB NOT NULL PRIMARY KEY,
    result      TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'table events is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'table events is append-only'); END;
CREATE TRIGGER event_commands_no_update BEFORE UPDATE ON event_commands
BEGIN SELECT RAISE(ABORT, 'table event_commands is append-only'); END;
CREATE TRIGGER event_commands_no_delete BEFORE DELETE ON event_commands
BEGIN SELECT RAISE(ABORT, 'table event_commands is append-only'); END;
