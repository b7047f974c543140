-- mfs_apply_policies(ingest_days, retention_days): the refresh, compression and retention
-- policies for the configured ingest window; `mfs db up` calls it (mfs.provisioning.policies)
-- when mfs_policies_match says they differ. Re-running replaces the policies.
--   refresh:     the continuous aggregates (ohlcv_1d_cagg, ohlcv_1w_cagg — read through the
--                ohlcv_1d / ohlcv_1w views — and features_1d_last) hourly, over the ingest window
--                plus two days (older late data: the refresh the pipeline runs after each run
--                covers it). The hierarchical weekly one materializes complete weeks only
--                (end_offset 0: up to now); its current week is served by real-time aggregation —
--                materialized, that week kept rows truncated from the daily one through every later
--                refresh (TimescaleDB 2.28). The daily ones end a day ahead of now (end_offset
--                -1 day) rather than at the newest data (NULL), which TimescaleDB finds with a
--                max(ts) over every chunk of the source (there is no time-only index): twice per
--                aggregate and run, 60–117 ms each at 730 days × 200 symbols against a few ms at
--                60 days (EXPLAIN ANALYZE, 2026-12-08). No bar starts a day after the store's clock.
--   compression: chunks entirely older than the ingest window + 1 day, so upserts never hit
--                compressed chunks: bars, feature rows, their revisions, feature_stats;
--   retention:   those tables' rows older than retention_days (NULL: keep everything); the
--                aggregates keep their history (the refresh windows never reach that far).
-- Community license only: the Apache edition has no policies (`mfs aggregates retention`).
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
    FOREACH relation IN ARRAY ARRAY['ohlcv_1d_cagg', 'ohlcv_1w_cagg', 'features_1d_last']::regclass[] LOOP
        PERFORM remove_continuous_aggregate_policy(relation, if_exists => true);
        PERFORM add_continuous_aggregate_policy(relation,
            start_offset => CASE WHEN relation = 'ohlcv_1w_cagg'::regclass THEN lookback + interval '14 days' ELSE lookback END,
            end_offset => CASE WHEN relation = 'ohlcv_1w_cagg'::regclass THEN interval '0' ELSE interval '-1 day' END,
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
REVOKE EXECUTE ON FUNCTION mfs_apply_policies(integer, integer) FROM PUBLIC;
