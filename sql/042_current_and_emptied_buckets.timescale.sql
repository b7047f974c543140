-- The hierarchical ohlcv_1w's refresh policy materializes complete weeks only (end_offset 0: up
-- to now, not NULL: up to the newest data); its current week is served by real-time aggregation.
-- Materialized, that week kept rows truncated from ohlcv_1d through every later refresh
-- (TimescaleDB 2.28). The policy functions are in sql/functions/ (repeatable files); mfs db up
-- re-applies the policies when they no longer match.
SELECT 'ohlcv_1w end_offset 0: sql/functions/mfs_apply_policies.timescale.sql' AS note;
