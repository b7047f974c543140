-- mfs_policies_match(ingest_days, retention_days): whether the refresh, compression and
-- retention policies already are what mfs_apply_policies would set for these values; `mfs db up`
-- then leaves them (and their run history and schedule) alone instead of re-creating them on
-- every start. Community license only.
CREATE OR REPLACE FUNCTION mfs_policies_match(ingest_days integer, retention_days integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    WITH want(proc, relation, key, value) AS (
        SELECT 'policy_refresh_continuous_aggregate', rel, 'start_offset',
               make_interval(days => ingest_days + 2 + CASE WHEN rel = 'ohlcv_1w_cagg' THEN 14 ELSE 0 END)
        FROM unnest(ARRAY['ohlcv_1d_cagg', 'ohlcv_1w_cagg', 'features_1d_last']) AS rel
        UNION ALL
        SELECT 'policy_refresh_continuous_aggregate', rel, 'end_offset',
               CASE WHEN rel = 'ohlcv_1w_cagg' THEN interval '0' ELSE interval '-1 day' END
        FROM unnest(ARRAY['ohlcv_1d_cagg', 'ohlcv_1w_cagg', 'features_1d_last']) AS rel
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
          AND hypertable_name IN ('ohlcv_1d_cagg', 'ohlcv_1w_cagg', 'features_1d_last', 'market_data', 'features',
                                  'market_data_revisions', 'features_revisions', 'feature_stats')
    )
    SELECT (SELECT count(*) FROM have) = (SELECT count(DISTINCT (proc, relation)) FROM want)
       AND NOT EXISTS (SELECT 1 FROM want w
                       WHERE NOT EXISTS (SELECT 1 FROM have h
                                         WHERE h.proc = w.proc AND h.relation = w.relation
                                           AND (h.config ->> w.key)::interval = w.value))
$$;
REVOKE EXECUTE ON FUNCTION mfs_policies_match(integer, integer) FROM PUBLIC;
