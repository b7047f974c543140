-- mfs_rebuild_feature_views(): everything generated from the feature columns — the feature views
-- (mfs_rebuild_feature_relations) and the newest rows' packed form (mfs_rebuild_latest_packed,
-- sql/074), in the caller's transaction. The feature registry's DDL calls it after every change
-- of the feature columns (mfs.features.registry).
-- mfs:after mfs_rebuild_feature_relations
CREATE OR REPLACE FUNCTION mfs_rebuild_feature_views() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mfs_rebuild_feature_relations();
    PERFORM mfs_rebuild_latest_packed();
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_feature_views() FROM PUBLIC;

SELECT mfs_rebuild_feature_views();
