-- Every series' newest feature row also as one fixed-width bytea (features_latest_packed), for a
-- client that reads every symbol at once (mfs.dataset.latest_features). PostgreSQL's binary COPY
-- calls a send function for every value: 8,000 rows × 45 columns of latest_features cost ~15 ms
-- of server time and ~21 ms through psycopg2 on this machine (2 cores), however the rows are
-- stored; one bytea per row is ~5 ms, and numpy views it without parsing. A table of its own,
-- not a column of features_latest: reaching a row's 46th column costs the scan ~4 ms for 8,000
-- rows (its 45 columns are walked), a 3-column table ~1 ms.
--
-- Kept by statement triggers on features_latest, in the transaction of every write of it, and
-- rebuilt with every change of its columns (mfs_rebuild_feature_views). Layout
-- (mfs_latest_layout): a layout number (mfs_latest_layout_id, which the reader compares), then
-- the columns of features_latest in their order, except interval (the reader asks for one) — the
-- symbol as 16 bytes, padded with spaces; times as binary timestamptz (µs since 2000-01-01);
-- integers and doubles big-endian. A NULL travels as a sentinel, as in the dataset reads: NaN,
-- the integer type's minimum, '-infinity'. A symbol that is not 1–16 of [0-9A-Za-z.=^_-] (only a
-- hand-written row can have one) has packed NULL: the reader reads it through latest_features.

CREATE TABLE features_latest_packed (
    symbol   text NOT NULL,
    interval text NOT NULL,
    packed   bytea,
    PRIMARY KEY (symbol, interval)
);
COMMENT ON TABLE features_latest_packed IS
    'features_latest, one bytea per row (kept by triggers); read it as latest_features_packed';
-- "is any requested row without a packed form?" is one index probe.
CREATE INDEX features_latest_unpacked ON features_latest_packed (interval) WHERE packed IS NULL;
REVOKE SELECT ON features_latest_packed FROM mfs_reader;
CREATE VIEW latest_features_packed AS SELECT symbol, interval, packed FROM features_latest_packed;
COMMENT ON VIEW latest_features_packed IS
    'latest_features, one bytea per row (layout: mfs_latest_layout()); read by mfs.dataset.latest_features';
GRANT SELECT ON latest_features_packed TO mfs_reader;

CREATE FUNCTION mfs_latest_layout() RETURNS TABLE (attnum int, name text, sql_type text, not_null boolean)
LANGUAGE sql STABLE AS $$
    SELECT a.attnum::int, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_attribute a
    WHERE a.attrelid = 'features_latest'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> 'interval'
    ORDER BY a.attnum
$$;
COMMENT ON FUNCTION mfs_latest_layout() IS 'The fields of latest_features_packed.packed after its layout number, in order';

CREATE FUNCTION mfs_latest_layout_id() RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT hashtext(string_agg(name || ' ' || sql_type, ', ' ORDER BY attnum)) FROM mfs_latest_layout()
$$;
COMMENT ON FUNCTION mfs_latest_layout_id() IS 'The layout number every packed row starts with';

-- Recreates mfs_pack_latest (a features_latest row -> its packed bytes) from the table's current
-- columns, and every packed row.
CREATE FUNCTION mfs_rebuild_latest_packed() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fields text;
    unsupported text;
BEGIN
    SELECT string_agg(format('%I %s', name, sql_type), ', ') INTO unsupported FROM mfs_latest_layout()
    WHERE sql_type NOT IN ('double precision', 'smallint', 'integer', 'bigint', 'timestamp with time zone')
      AND (name, sql_type) <> ('symbol', 'text');
    IF unsupported IS NOT NULL THEN
        RAISE EXCEPTION 'features_latest has columns no packed row can hold: %', unsupported;
    END IF;
    SELECT string_agg(CASE sql_type
            WHEN 'text' THEN format('decode(rpad(r.%I, 16), ''escape'')', name)
            WHEN 'double precision' THEN format('float8send(coalesce(r.%I, ''NaN''))', name)
            WHEN 'smallint' THEN format('int2send(coalesce(r.%I, (-32768)::int2))', name)
            WHEN 'integer' THEN format('int4send(coalesce(r.%I, (-2147483648)::int4))', name)
            WHEN 'bigint' THEN format('int8send(coalesce(r.%I, (-9223372036854775808)::int8))', name)
            ELSE format('timestamptz_send(coalesce(r.%I, ''-infinity''))', name)
        END, ' || ' ORDER BY attnum) INTO fields
    FROM mfs_latest_layout();
    EXECUTE format($f$CREATE OR REPLACE FUNCTION mfs_pack_latest(r features_latest) RETURNS bytea
        LANGUAGE sql IMMUTABLE AS $p$
        SELECT CASE WHEN r.symbol ~ '^[0-9A-Za-z.=^_-]{1,16}$' THEN int4send(%s) || %s END $p$ $f$,
        mfs_latest_layout_id(), fields);
    DELETE FROM features_latest_packed;
    INSERT INTO features_latest_packed SELECT r.symbol, r.interval, mfs_pack_latest(r) FROM features_latest r;
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_latest_packed() FROM PUBLIC;

CREATE FUNCTION mfs_latest_packed_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM features_latest_packed p USING removed_rows o WHERE p.symbol = o.symbol AND p.interval = o.interval;
    RETURN NULL;
END $$;

CREATE FUNCTION mfs_latest_packed_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO features_latest_packed SELECT r.symbol, r.interval, mfs_pack_latest(r) FROM added_rows r;
    RETURN NULL;
END $$;

CREATE FUNCTION mfs_latest_packed_emptied() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM features_latest_packed;
    RETURN NULL;
END $$;

-- An update is its old rows removed, then its new rows added (the two triggers fire in name order).
CREATE TRIGGER features_latest_packed_1_removed AFTER DELETE ON features_latest
    REFERENCING OLD TABLE AS removed_rows FOR EACH STATEMENT EXECUTE FUNCTION mfs_latest_packed_removed();
CREATE TRIGGER features_latest_packed_1_updated_from AFTER UPDATE ON features_latest
    REFERENCING OLD TABLE AS removed_rows FOR EACH STATEMENT EXECUTE FUNCTION mfs_latest_packed_removed();
CREATE TRIGGER features_latest_packed_2_added AFTER INSERT ON features_latest
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION mfs_latest_packed_added();
CREATE TRIGGER features_latest_packed_2_updated_to AFTER UPDATE ON features_latest
    REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION mfs_latest_packed_added();
CREATE TRIGGER features_latest_packed_emptied AFTER TRUNCATE ON features_latest
    FOR EACH STATEMENT EXECUTE FUNCTION mfs_latest_packed_emptied();

-- mfs_rebuild_feature_views (sql/functions/) runs after every change of the feature columns: it
-- rebuilds the packed rows too, in the same transaction. Here the packing function is made for the
-- triggers above.
SELECT mfs_rebuild_latest_packed();
