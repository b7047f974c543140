-- Every series' newest feature row also as one fixed-width bytea (features_latest.packed), for a
-- client that reads every symbol at once (mfs.dataset.latest_features). PostgreSQL's binary COPY
-- calls a send function for every value: 8,000 rows × 45 columns of latest_features cost ~15 ms
-- of server time and ~21 ms through psycopg2 on this machine (2 cores), however the rows are
-- stored; one bytea per row is ~7 ms, and numpy views it without parsing.
--
-- A generated column: PostgreSQL computes it on every insert and update of the row, so it holds
-- that row's values whoever writes. Layout (mfs_latest_layout): the columns of features_latest in
-- their order, except interval (the reader asks for one) — the symbol as 16 bytes, padded with
-- spaces; times as binary timestamptz (µs since 2000-01-01); integers and doubles big-endian.
-- A NULL travels as a sentinel, as in the dataset reads: NaN, the integer type's minimum,
-- '-infinity'. A symbol that is not 1–16 of [0-9A-Za-z.=^_-] (only a hand-written row can have
-- one) has no packed row: it is read through latest_features.

CREATE FUNCTION mfs_latest_layout() RETURNS TABLE (attnum int, name text, sql_type text, not_null boolean)
LANGUAGE sql STABLE AS $$
    SELECT a.attnum::int, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_attribute a
    WHERE a.attrelid = 'features_latest'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('interval', 'packed')
    ORDER BY a.attnum
$$;
COMMENT ON FUNCTION mfs_latest_layout() IS 'The fields of latest_features_packed.packed, in order';

CREATE FUNCTION mfs_drop_latest_packed() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DROP VIEW IF EXISTS latest_features_packed;
    ALTER TABLE features_latest DROP COLUMN IF EXISTS packed;
END $$;
REVOKE EXECUTE ON FUNCTION mfs_drop_latest_packed() FROM PUBLIC;

-- (Re)creates the column from the table's current columns: after every change of them (the
-- registry runs it through mfs_rebuild_feature_views, in the transaction of the change; 8,000
-- rows are rewritten in ~50 ms).
CREATE FUNCTION mfs_rebuild_latest_packed() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fields text;
    unsupported text;
BEGIN
    PERFORM mfs_drop_latest_packed();
    SELECT string_agg(format('%I %s', name, sql_type), ', ') INTO unsupported FROM mfs_latest_layout()
    WHERE sql_type NOT IN ('double precision', 'smallint', 'integer', 'bigint', 'timestamp with time zone')
      AND (name, sql_type) <> ('symbol', 'text');
    IF unsupported IS NOT NULL THEN
        RAISE EXCEPTION 'features_latest has columns no packed row can hold: %', unsupported;
    END IF;
    SELECT string_agg(CASE sql_type
            WHEN 'text' THEN format('decode(rpad(%I, 16), ''escape'')', name)
            WHEN 'double precision' THEN format('float8send(coalesce(%I, ''NaN''))', name)
            WHEN 'smallint' THEN format('int2send(coalesce(%I, (-32768)::int2))', name)
            WHEN 'integer' THEN format('int4send(coalesce(%I, (-2147483648)::int4))', name)
            WHEN 'bigint' THEN format('int8send(coalesce(%I, (-9223372036854775808)::int8))', name)
            ELSE format('timestamptz_send(coalesce(%I, ''-infinity''))', name)
        END, ' || ' ORDER BY attnum) INTO fields
    FROM mfs_latest_layout();
    EXECUTE format($f$ALTER TABLE features_latest ADD COLUMN packed bytea GENERATED ALWAYS AS
        (CASE WHEN symbol ~ '^[0-9A-Za-z.=^_-]{1,16}$' THEN %s END) STORED$f$, fields);
    -- "is any requested row without a packed row?" is then one index probe.
    CREATE INDEX features_latest_unpacked ON features_latest (interval) WHERE packed IS NULL;
    CREATE VIEW latest_features_packed AS SELECT symbol, interval, packed FROM features_latest;
    COMMENT ON VIEW latest_features_packed IS
        'latest_features, one bytea per row (layout: mfs_latest_layout()); read by mfs.dataset.latest_features';
    GRANT SELECT ON latest_features_packed TO mfs_reader;
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_latest_packed() FROM PUBLIC;

-- As in 070, with latest_features naming its columns (not packed) and the packed row rebuilt last.
CREATE OR REPLACE FUNCTION mfs_rebuild_feature_views() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
    latest_cols text;
BEGIN
    SELECT string_agg(format('f.%I', name), ', ') INTO cols FROM mfs_feature_columns();
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO latest_cols
    FROM pg_attribute a
    WHERE a.attrelid = 'features_latest'::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'packed';
    EXECUTE format($v$CREATE OR REPLACE VIEW latest_features AS SELECT %s FROM features_latest$v$, latest_cols);
    COMMENT ON VIEW latest_features IS 'Newest feature row per symbol and interval';
    EXECUTE $v$CREATE OR REPLACE VIEW feature_versions AS
        SELECT f.computed_at AS known_from,
               f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
               'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, f.*
        FROM features f
        UNION ALL
        SELECT r.computed_at, r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)), r.*
        FROM features_revisions r$v$;
    COMMENT ON VIEW feature_versions IS
        'Every version of every feature row: known_from, complete, known_to, reason, run_id';
    EXECUTE $v$CREATE OR REPLACE VIEW features_asof_row AS
        SELECT NULL::bigint AS entity, NULL::timestamptz AS at, NULL::timestamptz AS known_at, v.*
        FROM feature_versions v WHERE false$v$;
    COMMENT ON VIEW features_asof_row IS 'The row type of features_asof (always empty)';
    EXECUTE format($v$CREATE OR REPLACE VIEW features_1d AS
        SELECT d.symbol, d.day, d.last_ts, f.feature_version, %s
        FROM features_1d_last d
        JOIN features f ON f.symbol = d.symbol AND f.interval = '1h' AND f.ts = d.last_ts$v$, cols);
    COMMENT ON VIEW features_1d IS 'Per symbol and New York day, the last hourly value of every feature; always current';
    PERFORM mfs_rebuild_latest_packed();
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_feature_views() FROM PUBLIC;

SELECT mfs_rebuild_feature_views();
