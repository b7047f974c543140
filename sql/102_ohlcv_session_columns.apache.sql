-- ohlcv_1d and ohlcv_1w say which New York session (week) a row is and whether it is final:
-- session_date / week_start (the New York date; `day` / `week` stay the New York midnight as a
-- timestamptz) and partial (sql/101's rule; a week while any of its sessions is), appended after
-- the existing columns so `SELECT *` readers keep their positions. The rollups store nothing new:
-- partial depends on the clock, and a refetch that changes no price changes it. Same columns as
-- the community license (102 .timescale). 103 rewrites partial inline.
CREATE OR REPLACE VIEW ohlcv_1d AS
SELECT u.*, (u.day AT TIME ZONE 'America/New_York')::date AS session_date,
       coalesce(mfs_session_partial(u.symbol, s.day_start, s.day_end, s.close_utc), false) AS partial
FROM (SELECT r.* FROM ohlcv_1d_rollup r
      WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_ranges p
                        WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.day >= p.lo AND r.day < p.hi)
      UNION ALL
      SELECT * FROM ohlcv_1d_live) u
LEFT JOIN market_sessions s ON s.day_start = u.day;
COMMENT ON VIEW ohlcv_1d IS
    'Daily OHLCV per symbol from hourly bars, by New York session (session_date); partial while not final; always current';

CREATE OR REPLACE VIEW ohlcv_1w AS
SELECT u.*, (u.week AT TIME ZONE 'America/New_York')::date AS week_start,
       EXISTS (SELECT 1 FROM market_sessions s
               WHERE s.day_start >= u.week AND s.day_start < ny_plus(u.week, interval '7 days')
                 AND mfs_session_partial(u.symbol, s.day_start, s.day_end, s.close_utc)) AS partial
FROM (SELECT r.* FROM ohlcv_1w_rollup r
      WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_week_ranges p
                        WHERE p.source = 'market_data' AND p.symbol = r.symbol AND r.week >= p.lo AND r.week < p.hi)
      UNION ALL
      SELECT * FROM ohlcv_1w_live) u;
COMMENT ON VIEW ohlcv_1w IS
    'Weekly OHLCV per symbol (weeks start Monday, New York time: week_start) from ohlcv_1d; partial while any session of it is; always current';
