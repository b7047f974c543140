-- ohlcv_1d and ohlcv_1w say which New York session (week) a row is and whether it is final:
-- session_date / week_start and partial, appended after the existing columns — the same columns
-- and rule as the Apache edition (sql/101's rule; 103 rewrites it inline).
--
-- A continuous aggregate cannot gain a column: it would have to be dropped and created again,
-- which rematerializes every bucket and, with retention on, loses the daily history whose hourly
-- bars were dropped (the aggregate is its only copy). So the continuous aggregates are renamed,
-- keeping their materialization, refresh policies and owner, and views with the public names
-- read them. partial is not materialized: it depends on the clock (a running session) and on
-- refetches that do not change any price, and the view computes it only when a query reads it.
-- ohlcv_1w stays hierarchical on the daily aggregate (TimescaleDB follows the rename);
-- missing_sessions keeps reading it too.
ALTER MATERIALIZED VIEW ohlcv_1d RENAME TO ohlcv_1d_cagg;
ALTER MATERIALIZED VIEW ohlcv_1w RENAME TO ohlcv_1w_cagg;
COMMENT ON VIEW ohlcv_1d_cagg IS 'The continuous aggregate behind ohlcv_1d (read ohlcv_1d)';
COMMENT ON VIEW ohlcv_1w_cagg IS 'The continuous aggregate behind ohlcv_1w (read ohlcv_1w)';
REVOKE SELECT ON ohlcv_1d_cagg, ohlcv_1w_cagg FROM mfs_reader;

-- The views are sql/views/ohlcv_1d.timescale.sql and ohlcv_1w.timescale.sql (repeatable files,
-- applied after the numbered migrations).

-- The policy functions name the continuous aggregates by their new names
-- (sql/functions/mfs_apply_policies.timescale.sql, mfs_policies_match.timescale.sql).
