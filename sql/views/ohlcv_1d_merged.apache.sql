-- ohlcv_1d_merged (Apache edition): the trigger-maintained rollup's rows of settled days and
-- ohlcv_1d_live's rows of the pending ranges — on this edition, what the community license's
-- continuous aggregate ohlcv_1d_cagg serves with real-time aggregation, so that one definition of
-- ohlcv_1d reads either. Internal: the reader reads ohlcv_1d.
-- mfs:after ohlcv_1d_live
CREATE VIEW ohlcv_1d_merged AS
SELECT r.* FROM ohlcv_1d_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_ranges p
                  WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.day >= p.lo AND r.day < p.hi)
UNION ALL
SELECT * FROM ohlcv_1d_live;
REVOKE SELECT ON ohlcv_1d_merged FROM mfs_reader;
