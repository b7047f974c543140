-- feature_stats is compressed and dropped like the feature rows it describes: segments per
-- feature and interval, newest first. The policies (mfs_apply_policies, sql/functions/) include
-- feature_stats since (mfs db up re-applies them: they no longer match).
ALTER TABLE feature_stats SET (timescaledb.compress,
                               timescaledb.compress_segmentby = 'feature, interval',
                               timescaledb.compress_orderby = 'computed_at DESC');
