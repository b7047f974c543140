-- partial, written inline instead of through mfs_session_partial (sql/101), which is dropped: a SQL
-- function holding a subquery is never inlined, and one symbol's year of ohlcv_1d with partial
-- took 202 ms through it against 66 ms inline (psql \timing, community license, 100 symbols ×
-- 1 year, 2026-12-07). The rule is unchanged: the session has not closed on the store's clock
-- (mfs_now: today's row of 4 of 7 bars), or the newest fetch of its hourly bars came before its
-- close (its last bar stored partially and not fetched since); a session without stored bars
-- (dropped by retention; the aggregate keeps the row) is not partial. It costs one index range
-- scan of the session's bars (at most 7) per row, only when a query reads the column; the join to
-- market_sessions is removed otherwise. Same columns on both editions.
-- The views are sql/views/ohlcv_1d.timescale.sql and ohlcv_1w.timescale.sql (repeatable files,
-- applied after the numbered migrations, which create them again): a store that applied 102 has
-- views reading the function, dropped here with it (nothing reads them on this edition).
DROP VIEW IF EXISTS ohlcv_1w;
DROP VIEW IF EXISTS ohlcv_1d;
DROP FUNCTION mfs_session_partial(text, timestamptz, timestamptz, timestamptz);
