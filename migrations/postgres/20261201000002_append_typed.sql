-- tenantry_append_typed: tenantry_append (20261201000001) with typed outcome columns instead
-- of one JSONB document per request. With many requests per batch (group commit under
-- sixteen writers), building, printing and parsing two JSON documents per request was a
-- measurable share of a batch's time; now a JSON result is built only for requests that
-- carry a command id, to be stored for their retries. The stored results keep their form.
-- tenantry_append stays, so a process of the previous release keeps working during a
-- rolling upgrade.
CREATE FUNCTION tenantry_append_typed(
    r_command   UUID[],
    r_x_end     INTEGER[],
    r_e_end     INTEGER[],
    x_stream    TEXT[],
    x_kind      SMALLINT[],
    x_version   BIGINT[],
    x_count     BIGINT[],
    x_prev      INTEGER[],
    e_r         INTEGER[],
    e_x         INTEGER[],
    e_ord       BIGINT[],
    e_id        UUID[],
    e_type      TEXT[],
    e_schema    INTEGER[],
    e_tenant    UUID[],
    e_payload   JSONB[],
    e_metadata  JSONB[],
    recorded    TIMESTAMPTZ
) RETURNS TABLE (
    request         INTEGER,
    kind            SMALLINT,   -- 0 written, 1 duplicate (see prior), 2 conflict
    first_position  BIGINT,
    last_position   BIGINT,
    versions        BIGINT[],   -- per expectation of the request, in order
    prior           JSONB,      -- a duplicate's first result, as stored
    conflict_stream TEXT,
    actual          BIGINT
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    n_req     INTEGER := coalesce(array_length(r_command, 1), 0);
    n_x       INTEGER := coalesce(array_length(x_stream, 1), 0);
    head      BIGINT;
    stored    BIGINT[];   -- each expectation's stream version in the table
    priors    JSONB[];    -- each request's earlier result, if its command id was seen
    cur       BIGINT[];   -- each expectation's stream version just before its request
    x_ok      BOOLEAN[];  -- whether each expectation's request is being written
    base      BIGINT[];   -- per request: position of its first event minus that event's index
    accepted  BOOLEAN[];
    vers      BIGINT[];
    cmd_ids   UUID[] := '{}';
    cmd_res   JSONB[] := '{}';
    x_start   INTEGER := 1;
    e_start   INTEGER := 1;
    j         INTEGER;
    v         BIGINT;
    n         BIGINT;
    c_stream  TEXT;
    c_actual  BIGINT;
BEGIN
    -- Under REPEATABLE READ or SERIALIZABLE the snapshot predates the lock and the head
    -- read below would be stale.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'tenantry_append must run under READ COMMITTED isolation';
    END IF;
    PERFORM pg_advisory_xact_lock(7245130914);
    -- One statement (one snapshot, taken after the lock) reads everything the checks need.
    SELECT (SELECT coalesce(max(ev.position), 0) FROM events ev),
           (SELECT array_agg(coalesce((SELECT max(ev.version) FROM events ev
                                        WHERE ev.stream_id = u.s), 0) ORDER BY u.i)
              FROM unnest(x_stream) WITH ORDINALITY AS u(s, i)),
           (SELECT array_agg((SELECT c.result FROM event_commands c
                               WHERE c.command_id = u.id) ORDER BY u.i)
              FROM unnest(r_command) WITH ORDINALITY AS u(id, i))
      INTO head, stored, priors;
    cur := array_fill(0::BIGINT, ARRAY[n_x]);
    x_ok := array_fill(false, ARRAY[n_x]);
    base := array_fill(0::BIGINT, ARRAY[n_req]);
    accepted := array_fill(false, ARRAY[n_req]);

    FOR r IN 1 .. n_req LOOP
        request := r;
        first_position := NULL;
        last_position := NULL;
        versions := NULL;
        prior := NULL;
        conflict_stream := NULL;
        actual := NULL;
        IF priors[r] IS NOT NULL THEN
            kind := 1;
            prior := priors[r];
        ELSE
            c_stream := NULL;
            FOR i IN x_start .. r_x_end[r] LOOP
                j := x_prev[i];
                WHILE j > 0 AND NOT x_ok[j] LOOP
                    j := x_prev[j];
                END LOOP;
                IF j > 0 THEN
                    v := cur[j] + x_count[j];
                ELSE
                    v := stored[i];
                END IF;
                cur[i] := v;
                IF (x_kind[i] = 1 AND v <> 0)
                    OR (x_kind[i] = 2 AND v <> x_version[i])
                    OR (x_kind[i] = 3 AND v = 0) THEN
                    c_stream := x_stream[i];
                    c_actual := v;
                    EXIT;
                END IF;
            END LOOP;

            IF c_stream IS NOT NULL THEN
                kind := 2;
                conflict_stream := c_stream;
                actual := c_actual;
            ELSE
                n := r_e_end[r] - e_start + 1;
                accepted[r] := true;
                base[r] := head - e_start + 1;
                vers := '{}';
                FOR i IN x_start .. r_x_end[r] LOOP
                    x_ok[i] := true;
                    vers := vers || (cur[i] + x_count[i]);
                END LOOP;
                kind := 0;
                first_position := head + 1;
                last_position := head + n;
                versions := vers;
                IF r_command[r] IS NOT NULL THEN
                    cmd_ids := cmd_ids || r_command[r];
                    cmd_res := cmd_res || jsonb_build_object(
                        'first_position', head + 1,
                        'last_position', head + n,
                        'streams', to_jsonb(x_stream[x_start:r_x_end[r]]),
                        'versions', to_jsonb(vers));
                END IF;
                head := head + n;
            END IF;
        END IF;
        RETURN NEXT;
        x_start := r_x_end[r] + 1;
        e_start := r_e_end[r] + 1;
    END LOOP;

    INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version,
                        tenant_id, payload, metadata, recorded_at)
    SELECT base[t.r] + t.ord, t.id, x_stream[t.x], cur[t.x] + t.o, t.typ, t.sch, t.ten,
           t.pay, t.meta, recorded
      FROM unnest(e_r, e_x, e_ord, e_id, e_type, e_schema, e_tenant, e_payload, e_metadata)
           WITH ORDINALITY AS t(r, x, o, id, typ, sch, ten, pay, meta, ord)
     WHERE accepted[t.r];

    IF cardinality(cmd_ids) > 0 THEN
        INSERT INTO event_commands (command_id, result, recorded_at)
        SELECT u.id, u.res, recorded FROM unnest(cmd_ids, cmd_res) AS u(id, res);
    END IF;

    -- Delivered at commit: wakes subscribers in other processes.
    PERFORM pg_notify('tenantry_events', head::TEXT);
END $$;
