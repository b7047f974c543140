-- latest_features from a maintained table: the newest feature row of every series, written in the
-- same transaction as the feature rows themselves (mfs.features.batch.refresh_latest), so a
-- reader sees the newest row and the history change together. The view it replaces probed every
-- chunk of market_data (for the series) and of features (for each series' newest row): measured
-- 500 symbols × 60 days, 28 ms for every symbol and 17 ms for one; a 8,000-row table answers
-- every symbol from one sequential scan and one symbol from its primary key.
-- Its columns are those of features, in the same order (the registry adds and drops feature
-- columns in all three tables: features, features_revisions, features_latest).
CREATE TABLE features_latest (LIKE features INCLUDING DEFAULTS, PRIMARY KEY (symbol, interval));
COMMENT ON TABLE features_latest IS
    'The newest row of features per symbol and interval (kept by the feature runs); read it as latest_features';

-- Every series' newest row again, from features: after a write of feature rows that did not keep
-- the table itself (SQL by hand; see 071), and once here.
CREATE FUNCTION mfs_refresh_features_latest() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM features_latest;
    INSERT INTO features_latest
    SELECT f.* FROM stored_series s
    CROSS JOIN LATERAL (SELECT * FROM features f WHERE f.symbol = s.symbol AND f.interval = s.interval
                        ORDER BY f.ts DESC LIMIT 1) f;
$$;
REVOKE EXECUTE ON FUNCTION mfs_refresh_features_latest() FROM PUBLIC;
SELECT mfs_refresh_features_latest();

-- latest_features reads it: mfs_rebuild_feature_relations (sql/functions/, applied after the
-- numbered migrations).

-- Readers read it as latest_features (the view runs with its owner's rights).
REVOKE SELECT ON features_latest FROM mfs_reader;
