-- The Apache edition has no compression and no policies: `mfs aggregates retention` drops
-- feature_stats' old chunks with the feature rows' (mfs.aggregates.retention).
SELECT 'feature_stats is dropped by mfs aggregates retention' AS note;
