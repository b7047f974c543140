-- latest_features says whether each row is final: `complete` is false while the row's bar had not
-- closed when it was fetched (the current hour's bar, fetched at 13:35 for 13:30–14:30), and
-- `closes_at` (when the bar is over) stands beside `ts`. Partial rows are still served — a live
-- model wants the freshest value and to know it is partial; a user who wants final values only
-- filters `WHERE complete`. Same rule as feature_versions.complete (sql/050).
--
-- Columns: symbol, interval, ts, closes_at, complete, then the row's remaining columns in the
-- order of features (feature_version, computed_at, bar_ingested_at, every feature). Generated from
-- the feature columns like the other feature views, so a new feature is appended to the view.
-- The view is dropped and created once here (its columns move); nothing else depends on it, and
-- the default privileges (sql/034) grant it to mfs_reader again.
DROP VIEW latest_features;

CREATE OR REPLACE FUNCTION mfs_rebuild_feature_relations() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(format('f.%I', name), ', ') INTO cols FROM mfs_feature_columns();
    EXECUTE format($v$CREATE OR REPLACE VIEW latest_features AS
        SELECT f.symbol, f.interval, f.ts, f.closes_at,
               f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
               f.feature_version, f.computed_at, f.bar_ingested_at, %s
        FROM features_latest f$v$, cols);
    COMMENT ON VIEW latest_features IS
        'Newest feature row per symbol and interval; complete is false while its bar had not closed when fetched';
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
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_feature_relations() FROM PUBLIC;

SELECT mfs_rebuild_feature_views();
GRANT SELECT ON latest_features TO mfs_reader;
