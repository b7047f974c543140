-- missing_sessions: the NYSE sessions without any bar, per symbol and interval, between a series'
-- first bar and now. Hourly series test each session against the daily rows (one row per
-- symbol-day, always current) and daily series against their day labels, in one hashed anti-join
-- instead of one probe of the bars per session: 15.5 s → 0.9 s for all series, 110 → 85 ms for
-- one symbol (500 symbols × 1 year of hourly bars).
-- The daily rows: ohlcv_1d on the Apache edition; on the community license the continuous
-- aggregate behind it (its partial column is not needed).
-- mfs:twin edition=apache daily=ohlcv_1d
-- mfs:twin edition=timescale daily=ohlcv_1d_cagg
-- mfs:after ohlcv_1d
CREATE VIEW missing_sessions AS
WITH expected AS (
    SELECT s.symbol, s.interval, ms.session_date, ms.day_start, ms.half_day
    FROM stored_series s
    CROSS JOIN LATERAL (SELECT min(m.ts) AS first_bar FROM market_data m
                        WHERE m.symbol = s.symbol AND m.interval = s.interval) f
    JOIN market_sessions ms ON ms.day_end > f.first_bar AND ms.open_utc <= now()
), present AS (
    SELECT symbol, '1h'::text AS interval, day FROM {{daily}}
    UNION ALL
    SELECT symbol, interval, time_bucket('1 day', ts, 'America/New_York') FROM market_data WHERE interval = '1d'
)
SELECT e.* FROM expected e
WHERE NOT EXISTS (SELECT 1 FROM present p
                  WHERE p.symbol = e.symbol AND p.interval = e.interval AND p.day = e.day_start);
COMMENT ON VIEW missing_sessions IS 'NYSE sessions without any bar, per symbol and interval, since the series began';
GRANT SELECT ON missing_sessions TO mfs_reader;
