-- ohlcv_1d_live: the daily rows of the pending (invalidated, not yet rolled up) ranges of hourly
-- bars, computed when read; ohlcv_1d serves them in place of the rollup's rows there. Aggregated
-- range by range (one index probe and one small grouping per pending range) instead of one
-- grouping of every joined bar: for the first refresh of 8,000 symbols × 60 days of hourly bars
-- the planner guessed 40,000 groups for 328,000 and its hash aggregate spilled 250 MB to disk, so
-- that step grew faster than the store (2,000 → 8,000 symbols: 0.82 → 4.4 s). Per range: 3.0 →
-- 2.3 s at 8,000, the same rows. Ranges are whole New York days, merged so they never overlap.
-- Internal: the reader reads ohlcv_1d.
CREATE VIEW ohlcv_1d_live AS
SELECT p.symbol, b.day, b.open, b.high, b.low, b.close, b.volume, b.bar_count
FROM aggregate_pending_ranges p
CROSS JOIN LATERAL (
    SELECT time_bucket('1 day', m.ts, 'America/New_York') AS day,
           first(m.open, m.ts) AS open, max(m.high) AS high, min(m.low) AS low,
           last(m.close, m.ts) AS close, sum(m.volume)::bigint AS volume, count(*) AS bar_count
    FROM market_data m
    WHERE m.symbol = p.symbol AND m.interval = '1h' AND m.ts >= p.lo AND m.ts < p.hi
    GROUP BY 1
) b
WHERE p.source = 'market_data';
REVOKE SELECT ON ohlcv_1d_live FROM mfs_reader;
