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

CREATE VIEW ohlcv_1d AS
SELECT c.*, (c.day AT TIME ZONE 'America/New_York')::date AS session_date,
       coalesce(mfs_session_partial(c.symbol, s.day_start, s.day_end, s.close_utc), false) AS partial
FROM ohlcv_1d_cagg c
LEFT JOIN market_sessions s ON s.day_start = c.day;
COMMENT ON VIEW ohlcv_1d IS
    'Daily OHLCV per symbol from hourly bars, by New York session (session_date); partial while not final; always current';

CREATE VIEW ohlcv_1w AS
SELECT c.*, (c.week AT TIME ZONE 'America/New_York')::date AS week_start,
       EXISTS (SELECT 1 FROM market_sessions s
               WHERE s.day_start >= c.week AND s.day_start < ny_plus(c.week, interval '7 days')
                 AND mfs_session_partial(c.symbol, s.day_start, s.day_end, s.close_utc)) AS partial
FROM ohlcv_1w_cagg c;
COMMENT ON VIEW ohlcv_1w IS
    'Weekly OHLCV per symbol (weeks start Monday, New York time: week_start) from ohlcv_1d; partial while any session of it is; always current';
GRANT SELECT ON ohlcv_1d, ohlcv_1w TO mfs_reader;

-- The policy functions name the continuous aggregates: the same functions, with the new names
-- (rewritten from their current text rather than restated, so they stay whatever the latest
-- migration made them).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY['mfs_apply_policies(integer, integer)', 'mfs_policies_match(integer, integer)']::regprocedure[] LOOP
        EXECUTE replace(replace(pg_get_functiondef(fn), '''ohlcv_1d''', '''ohlcv_1d_cagg'''),
                        '''ohlcv_1w''', '''ohlcv_1w_cagg''');
    END LOOP;
END $$;
