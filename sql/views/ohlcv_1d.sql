-- ohlcv_1d: the daily rows — the continuous aggregate ohlcv_1d_cagg (sql/031, renamed by 102: an
-- aggregate cannot gain a column without being rematerialized) on the community license,
-- ohlcv_1d_merged (the trigger-maintained rollup and its pending ranges) on the Apache edition —
-- with the New York session it is (session_date; `day` stays the New York midnight as a
-- timestamptz) and whether it is final (partial). partial is not materialized: it depends on the
-- clock and on refetches that change no price, and is computed only when a query reads the column
-- (the join to market_sessions is removed otherwise). A session is partial while it has not closed
-- on the store's clock (mfs_now: today's row of 4 of 7 bars), or when the newest fetch of its
-- hourly bars came before its close (its last bar stored partially and not fetched since); a
-- session without stored bars (dropped by retention; the daily rows keep it) is not partial.
-- Written inline: a SQL function holding a subquery is never inlined, and one symbol's year with
-- partial took 202 ms through one against 66 ms inline (psql \timing, community license, 100
-- symbols × 1 year, 2026-12-07). It costs one index range scan of the session's bars (at most 7)
-- per row read with the column.
-- mfs:twin edition=apache daily=ohlcv_1d_merged
-- mfs:twin edition=timescale daily=ohlcv_1d_cagg
-- mfs:after ohlcv_1d_merged
CREATE VIEW ohlcv_1d AS
SELECT c.*, (c.day AT TIME ZONE 'America/New_York')::date AS session_date,
       coalesce(s.close_utc > mfs_now()
                OR (SELECT max(m.ingested_at) FROM market_data m
                    WHERE m.symbol = c.symbol AND m.interval = '1h' AND m.ts >= s.day_start AND m.ts < s.day_end)
                   < s.close_utc, false) AS partial
FROM {{daily}} c
LEFT JOIN market_sessions s ON s.day_start = c.day;
COMMENT ON VIEW ohlcv_1d IS
    'Daily OHLCV per symbol from hourly bars, by New York session (session_date); partial while not final; always current';
GRANT SELECT ON ohlcv_1d TO mfs_reader;
