-- ohlcv_1w: the weekly rows — the continuous aggregate ohlcv_1w_cagg (hierarchical on
-- ohlcv_1d_cagg) on the community license, ohlcv_1w_merged on the Apache edition — with the week
-- it is (week_start, Monday in New York) and whether it is final: partial while any session of it
-- is, by the rule of ohlcv_1d (written inline likewise).
-- mfs:twin edition=apache weekly=ohlcv_1w_merged
-- mfs:twin edition=timescale weekly=ohlcv_1w_cagg
-- mfs:after ohlcv_1w_merged
CREATE VIEW ohlcv_1w AS
SELECT c.*, (c.week AT TIME ZONE 'America/New_York')::date AS week_start,
       EXISTS (SELECT 1 FROM market_sessions s
               WHERE s.day_start >= c.week AND s.day_start < ny_plus(c.week, interval '7 days')
                 AND (s.close_utc > mfs_now()
                      OR (SELECT max(m.ingested_at) FROM market_data m
                          WHERE m.symbol = c.symbol AND m.interval = '1h' AND m.ts >= s.day_start AND m.ts < s.day_end)
                         < s.close_utc)) AS partial
FROM {{weekly}} c;
COMMENT ON VIEW ohlcv_1w IS
    'Weekly OHLCV per symbol (weeks start Monday, New York time: week_start) from ohlcv_1d; partial while any session of it is; always current';
GRANT SELECT ON ohlcv_1w TO mfs_reader;
