-- The event store: one append-only table that is both the global log and every stream.
--
-- Ordering: every append runs tenantry_append(), which takes one transaction-scoped advisory
-- lock before it reads the head. Appends therefore commit one after another, each becoming
-- visible before the next can take the lock, so positions are dense (1, 2, 3, ...) and a
-- reader that sees position n has already been able to see every position below n. The
-- application batches concurrent appends into one call (group commit), so the lock is taken
-- once per batch, not once per event. See ARCHITECTURE.md.

CREATE TABLE events (
    position        BIGINT      NOT NULL PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    version         BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    tenant_id       UUID,
    payload         JSONB       NOT NULL,
    metadata        JSONB       NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream_id, version),
    CONSTRAINT events_position_positive CHECK (position > 0),
    CONSTRAINT events_version_positive CHECK (version > 0)
);

-- Idempotency: the result of every append that carried a command id.
CREATE TABLE event_commands (
    command_id  UUID        NOT NULL PRIMARY KEY,
    result      JSONB       NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);

-- Events are never changed or deleted.
CREATE FUNCTION tenantry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry_refuse_change();
CREATE TRIGGER event_commands_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON event_commands
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry_refuse_change();

-- Appends a batch of requests. Each request is atomic on its own: it is written whole or,
-- when one of its expectations fails, not at all (and reported as a conflict) while the
-- other requests of the batch go ahead.
--
-- Requests are laid out as slices of the flat arrays: request r owns expectations
-- x_*[prev r_x_end + 1 .. r_x_end[r]] and events e_*[prev r_e_end + 1 .. r_e_end[r]].
-- e_x[i] is the index into x_* of event i's stream; e_ord[i] its 1-based order within that
-- stream in the request. x_kind: 0 any, 1 no stream, 2 exact x_version, 3 stream exists.
--
-- Returns one row per request: {"ok": result}, {"duplicate": first result} or
-- {"conflict": {"stream": ..., "actual": ...}}.
CREATE FUNCTION tenantry_append(
    r_command   UUID[],
    r_x_end     INTEGER[],
    r_e_end     INTEGER[],
    x_stream    TEXT[],
    x_kind      SMALLINT[],
    x_version   BIGINT[],
    e_x         INTEGER[],
    e_ord       BIGINT[],
    e_id        UUID[],
    e_type      TEXT[],
    e_schema    INTEGER[],
    e_tenant    UUID[],
    e_payload   JSONB[],
    e_metadata  JSONB[],
    recorded    TIMESTAMPTZ
) RETURNS TABLE (request INTEGER, outcome JSONB)
LANGUAGE plpgsql AS $$
DECLARE
    head      BIGINT;
    cur       BIGINT[];
    x_start   INTEGER := 1;
    e_start   INTEGER := 1;
    conflict  JSONB;
    prior     JSONB;
    v         BIGINT;
    n         INTEGER;
    written   JSONB;
    res       JSONB;
BEGIN
    PERFORM pg_advisory_xact_lock(7245130914);
    SELECT coalesce(max(ev.position), 0) INTO head FROM events ev;
    cur := array_fill(0::BIGINT, ARRAY[coalesce(array_length(x_stream, 1), 0)]);

    FOR r IN 1 .. coalesce(array_length(r_command, 1), 0) LOOP
        request := r;
        prior := NULL;
        IF r_command[r] IS NOT NULL THEN
            SELECT c.result INTO prior FROM event_commands c WHERE c.command_id = r_command[r];
        END IF;

        IF prior IS NOT NULL THEN
            outcome := jsonb_build_object('duplicate', prior);
        ELSE
            conflict := NULL;
            FOR i IN x_start .. r_x_end[r] LOOP
                SELECT coalesce(max(ev.version), 0) INTO v FROM events ev WHERE ev.stream_id = x_stream[i];
                cur[i] := v;
                IF (x_kind[i] = 1 AND v <> 0)
                    OR (x_kind[i] = 2 AND v <> x_version[i])
                    OR (x_kind[i] = 3 AND v = 0) THEN
                    conflict := jsonb_build_object('stream', x_stream[i], 'actual', v);
                    EXIT;
                END IF;
            END LOOP;

            IF conflict IS NOT NULL THEN
                outcome := jsonb_build_object('conflict', conflict);
            ELSE
                n := r_e_end[r] - e_start + 1;
                INSERT INTO events (position, event_id, stream_id, version, event_type,
                                    schema_version, tenant_id, payload, metadata, recorded_at)
                SELECT head + t.ord, t.id, x_stream[t.x], cur[t.x] + t.o, t.typ, t.sch, t.ten,
                       t.pay, t.meta, recorded
                FROM unnest(e_x[e_start:r_e_end[r]], e_ord[e_start:r_e_end[r]],
                            e_id[e_start:r_e_end[r]], e_type[e_start:r_e_end[r]],
                            e_schema[e_start:r_e_end[r]], e_tenant[e_start:r_e_end[r]],
                            e_payload[e_start:r_e_end[r]], e_metadata[e_start:r_e_end[r]])
                     WITH ORDINALITY AS t(x, o, id, typ, sch, ten, pay, meta, ord);

                SELECT jsonb_agg(jsonb_build_object(
                           'stream', x_stream[i],
                           'version', cur[i] + (SELECT count(*) FROM unnest(e_x[e_start:r_e_end[r]]) q WHERE q = i))
                         ORDER BY i)
                  INTO written
                  FROM generate_series(x_start, r_x_end[r]) AS i;
                res := jsonb_build_object('streams', written,
                                          'first_position', head + 1,
                                          'last_position', head + n);
                head := head + n;
                IF r_command[r] IS NOT NULL THEN
                    INSERT INTO event_commands (command_id, result, recorded_at)
                    VALUES (r_command[r], res, recorded);
                END IF;
                outcome := jsonb_build_object('ok', res);
            END IF;
        END IF;

        RETURN NEXT;
        x_start := r_x_end[r] + 1;
        e_start := r_e_end[r] + 1;
    END LOOP;

    -- Delivered at commit: wakes subscribers in other processes.
    PERFORM pg_notify('tenantry_events', head::TEXT);
END $$;
