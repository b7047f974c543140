-- ohlcv_1w_live: the weekly rows of the pending week ranges, from ohlcv_1d, range by range like
-- ohlcv_1d_live. Internal: the reader reads ohlcv_1w.
-- mfs:after ohlcv_1d
CREATE VIEW ohlcv_1w_live AS
SELECT p.symbol, b.week, b.open, b.high, b.low, b.close, b.volume, b.bar_count
FROM aggregate_pending_week_ranges p
CROSS JOIN LATERAL (
    SELECT time_bucket('1 week', d.day, 'America/New_York') AS week,
           first(d.open, d.day) AS open, max(d.high) AS high, min(d.low) AS low,
           last(d.close, d.day) AS close, sum(d.volume)::bigint AS volume, sum(d.bar_count)::bigint AS bar_count
    FROM ohlcv_1d d
    WHERE d.symbol = p.symbol AND d.day >= p.lo AND d.day < p.hi
    GROUP BY 1
) b
WHERE p.source = 'market_data';
REVOKE SELECT ON ohlcv_1w_live FROM mfs_reader;
