-- feature_stats is compressed and dropped like the feature rows it describes: segments per
-- feature and interval, newest first. The policies of 061 with feature_stats added (mfs db up
-- re-applies them: they no longer match).
ALTER TABLE feature_stats SET (timescaledb.compress,
                               timescaledb.compress_segmentby = 'feature, interval',
                               timescaledb.compress_orderby = 'computed_at DESC');

CREATE OR REPLACE FUNCTION mfs_apply_policies(ingest_days integer, retention_days integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lookback interval := make_interval(days => ingest_days + 2);
    relation regclass;
BEGIN
    IF retention_days IS NOT NULL AND retention_days <= ingest_days + 21 THEN
        RAISE EXCEPTION 'retention_days (%) must exceed the refresh window (ingest days + 21 = %)',
            retention_days, ingest_days + 21;
    END IF;
    FOREACH relation IN ARRAY ARRAY['ohlcv_1d', 'ohlcv_1w', 'features_1d_last']::regclass[] LOOP
        PERFORM remove_continuous_aggregate_policy(relation, if_exists => true);
        PERFORM add_continuous_aggregate_policy(relation,
            start_offset => CASE WHEN relation = 'ohlcv_1w'::regclass THEN lookback + interval '14 days' ELSE lookback END,
            end_offset => CASE WHEN relation = 'ohlcv_1w'::regclass THEN interval '0' END,
            schedule_interval => interval '1 hour');
    END LOOP;
    FOREACH relation IN ARRAY ARRAY['market_data', 'features', 'market_data_revisions', 'features_revisions', 'feature_stats']::regclass[] LOOP
        PERFORM remove_compression_policy(relation, if_exists => true);
        PERFORM add_compression_policy(relation, compress_after => make_interval(days => ingest_days + 1));
        PERFORM remove_retention_policy(relation, if_exists => true);
        IF retention_days IS NOT NULL THEN
            PERFORM add_retention_policy(relation, drop_after => make_interval(days => retention_days));
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION mfs_policies_match(ingest_days integer, retention_days integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    WITH want(proc, relation, key, value) AS (
        SELECT 'policy_refresh_continuous_aggregate', rel, 'start_offset',
               make_interval(days => ingest_days + 2 + CASE WHEN rel = 'ohlcv_1w' THEN 14 ELSE 0 END)
        FROM unnest(ARRAY['ohlcv_1d', 'ohlcv_1w', 'features_1d_last']) AS rel
        UNION ALL
        SELECT 'policy_refresh_continuous_aggregate', 'ohlcv_1w', 'end_offset', interval '0'
        UNION ALL
        SELECT 'policy_compression', rel, 'compress_after', make_interval(days => ingest_days + 1)
        FROM unnest(ARRAY['market_data', 'features', 'market_data_revisions', 'features_revisions', 'feature_stats']) AS rel
        UNION ALL
        SELECT 'policy_retention', rel, 'drop_after', make_interval(days => retention_days)
        FROM unnest(ARRAY['market_data', 'features', 'market_data_revisions', 'features_revisions', 'feature_stats']) AS rel WHERE retention_days IS NOT NULL
    ), have AS (
        SELECT proc_name::text AS proc, hypertable_name::text AS relation, config
        FROM timescaledb_information.jobs
        WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression', 'policy_retention')
          AND hypertable_name IN ('ohlcv_1d', 'ohlcv_1w', 'features_1d_last', 'market_data', 'features',
                                  'market_data_revisions', 'features_revisions', 'feature_stats')
    )
    SELECT (SELECT count(*) FROM have) = (SELECT count(DISTINCT (proc, relation)) FROM want)
       AND NOT EXISTS (SELECT 1 FROM want w
                       WHERE NOT EXISTS (SELECT 1 FROM have h
                                         WHERE h.proc = w.proc AND h.relation = w.relation
                                           AND (h.config ->> w.key)::interval = w.value))
$$;
REVOKE EXECUTE ON FUNCTION mfs_apply_policies(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mfs_policies_match(integer, integer) FROM PUBLIC;
