-- ohlcv_1w_merged (Apache edition): the weekly rollup's rows of settled weeks and ohlcv_1w_live's
-- rows of the pending ones, as ohlcv_1d_merged is for days. Internal: the reader reads ohlcv_1w.
-- mfs:after ohlcv_1w_live
CREATE VIEW ohlcv_1w_merged AS
SELECT r.* FROM ohlcv_1w_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_week_ranges p
                  WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.week >= p.lo AND r.week < p.hi)
UNION ALL
SELECT * FROM ohlcv_1w_live;
REVOKE SELECT ON ohlcv_1w_merged FROM mfs_reader;
