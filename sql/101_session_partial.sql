-- Whether a symbol's New York session is final in the store: false once the session has closed
-- (on the store's clock, mfs_now) AND the newest fetch of its hourly bars came after the close.
-- True while the session runs (today's row of 4 of 7 bars) and when every bar of it was fetched
-- before the close — the current hour's bar stored partially, and no collection since. A session
-- without stored bars (dropped by retention: the aggregate keeps the row) is not partial: its
-- rollup was written from the bars that were stored then. (The views of 102 called it per row;
-- 103 writes the same rule inline and drops it: a SQL function holding a subquery is never
-- inlined.)
CREATE FUNCTION mfs_session_partial(bar_symbol text, day_start timestamptz, day_end timestamptz,
                                    close_utc timestamptz) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN close_utc > mfs_now()
        OR coalesce((SELECT max(m.ingested_at) FROM market_data m
                     WHERE m.symbol = bar_symbol AND m.interval = '1h' AND m.ts >= day_start AND m.ts < day_end)
                    < close_utc, false);
COMMENT ON FUNCTION mfs_session_partial(text, timestamptz, timestamptz, timestamptz) IS
    'Whether a symbol''s session is not final yet: still open, or every bar of it fetched before its close';
