-- partial, written inline instead of through mfs_session_partial (sql/101), which is dropped: a SQL
-- function holding a subquery is never inlined, and one symbol's year of ohlcv_1d with partial
-- took 202 ms through it against 66 ms inline (psql \timing, community license, 100 symbols ×
-- 1 year, 2026-12-07). The rule is unchanged: the session has not closed on the store's clock
-- (mfs_now: today's row of 4 of 7 bars), or the newest fetch of its hourly bars came before its
-- close (its last bar stored partially and not fetched since); a session without stored bars
-- (dropped by retention; the aggregate keeps the row) is not partial. It costs one index range
-- scan of the session's bars (at most 7) per row, only when a query reads the column; the join to
-- market_sessions is removed otherwise. Same columns on both editions.
CREATE OR REPLACE VIEW ohlcv_1d AS
SELECT u.*, (u.day AT TIME ZONE 'America/New_York')::date AS session_date,
       coalesce(s.close_utc > mfs_now()
                OR (SELECT max(m.ingested_at) FROM market_data m
                    WHERE m.symbol = u.symbol AND m.interval = '1h' AND m.ts >= s.day_start AND m.ts < s.day_end)
                   < s.close_utc, false) AS partial
FROM (SELECT r.* FROM ohlcv_1d_rollup r
      WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_ranges p
                        WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.day >= p.lo AND r.day < p.hi)
      UNION ALL
      SELECT * FROM ohlcv_1d_live) u
LEFT JOIN market_sessions s ON s.day_start = u.day;

CREATE OR REPLACE VIEW ohlcv_1w AS
SELECT u.*, (u.week AT TIME ZONE 'America/New_York')::date AS week_start,
       EXISTS (SELECT 1 FROM market_sessions s
               WHERE s.day_start >= u.week AND s.day_start < ny_plus(u.week, interval '7 days')
                 AND (s.close_utc > mfs_now()
                      OR (SELECT max(m.ingested_at) FROM market_data m
                          WHERE m.symbol = u.symbol AND m.interval = '1h' AND m.ts >= s.day_start AND m.ts < s.day_end)
                         < s.close_utc)) AS partial
FROM (SELECT r.* FROM ohlcv_1w_rollup r
      WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_week_ranges p
                        WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.week >= p.lo AND r.week < p.hi)
      UNION ALL
      SELECT * FROM ohlcv_1w_live) u;

DROP FUNCTION mfs_session_partial(text, timestamptz, timestamptz, timestamptz);
