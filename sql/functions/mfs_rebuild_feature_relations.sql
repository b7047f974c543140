-- mfs_rebuild_feature_relations(): the views that carry every feature column, generated from
-- the columns of features (mfs_feature_columns): the only definition of each. Run after every
-- change of the feature columns (mfs_rebuild_feature_views, called by the feature registry's DDL)
-- and when this file changes. CREATE OR REPLACE appends a new column; a change that drops or
-- moves a column needs the views dropped first (the registry's prune does; a numbered migration
-- otherwise), then they are created.
--   latest_features: the newest row of every series (features_latest, kept by the feature runs),
--     with closes_at and `complete` (false while its bar had not closed when fetched: partial rows
--     are still served, a live model wants the freshest value and to know it is partial);
--   feature_versions: every version of every feature row (known_from, complete, known_to, ...);
--   features_asof_row: the row type of features_asof (always empty);
--   features_1d: per New York day the row of its last hourly bar (features_1d_last, a continuous
--     aggregate or trigger rollup of (symbol, day, last_ts)), so adding a feature rematerializes
--     nothing.
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

SELECT mfs_rebuild_feature_relations();
-- A store made before sql/100 dropped latest_features has it created here, granted by the default
-- privileges (sql/034) as well as by this line.
GRANT SELECT ON latest_features TO mfs_reader;
