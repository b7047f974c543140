-- features_1d follows the feature registry: its value columns are generated
-- (mfs_rebuild_feature_views, 060). What is maintained per New York day is only which hourly bar
-- was its last, features_1d_last (symbol, day, last_ts); features_1d joins that bar's row. Adding
-- or changing a feature therefore recomputes no rollup. Same trigger-maintained pattern as before
-- (031, 036): writes log invalidations, a refresh recomputes them into features_1d_rollup, and
-- features_1d_last adds the pending days computed live.
DROP VIEW features_1d;
DROP VIEW features_1d_live;

-- The rollup keeps its rows; only their feature values go.
DO $$
DECLARE
    col text;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute
               WHERE attrelid = 'features_1d_rollup'::regclass AND attnum > 0 AND NOT attisdropped
                 AND attname NOT IN ('symbol', 'day', 'last_ts') LOOP
        EXECUTE format('ALTER TABLE features_1d_rollup DROP COLUMN %I', col);
    END LOOP;
END $$;

-- An UPDATE of a feature row moves no bar: the day's last bar stays where it was.
DROP TRIGGER features_invalidate_update ON features;

CREATE VIEW features_1d_live AS
SELECT f.symbol, time_bucket('1 day', f.ts, 'America/New_York') AS day, max(f.ts) AS last_ts
FROM aggregate_pending_ranges p
JOIN features f ON f.symbol = p.symbol AND f.interval = '1h' AND f.ts >= p.lo AND f.ts < p.hi
WHERE p.source = 'features'
GROUP BY f.symbol, time_bucket('1 day', f.ts, 'America/New_York');
REVOKE SELECT ON features_1d_live FROM mfs_reader;

CREATE VIEW features_1d_last AS
SELECT r.* FROM features_1d_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_ranges p
                  WHERE p.source = 'features' AND p.symbol = r.symbol AND r.day >= p.lo AND r.day < p.hi)
UNION ALL
SELECT * FROM features_1d_live;
COMMENT ON VIEW features_1d_last IS 'Per symbol and New York day, the last hourly bar with features; always current';
-- features_1d reads it with its owner's rights; the reader reads features_1d.
REVOKE SELECT ON features_1d_last FROM mfs_reader;

SELECT mfs_rebuild_feature_views();
