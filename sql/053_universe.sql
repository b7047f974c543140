-- The universe as of a date: when each symbol entered the store and when it left it.
--
-- listed_on        New York date of the symbol's first stored bar (the ingest keeps the earliest;
--                  a backfill reaching further back moves it earlier).
-- delisted_on      New York date of its last stored bar, set when the ingest marks it delisted
--                  (after ingest.delisted_after consecutive runs in which Yahoo answered "No data
--                  found, symbol may be delisted"); NULL while it trades. Its history is kept.
-- not_found_streak consecutive runs with that answer; any bar arriving resets it (and clears a
--                  delisting: the symbol is listed again).
-- delisted_at      when it was marked, on the store's clock (mfs_now()).
ALTER TABLE symbols
    ADD COLUMN listed_on date,
    ADD COLUMN delisted_on date,
    ADD COLUMN not_found_streak integer NOT NULL DEFAULT 0 CHECK (not_found_streak >= 0),
    ADD COLUMN delisted_at timestamptz;

-- The first bar per (symbol, interval) through the primary key (symbol, interval, ts): the store
-- has no time-only index (037), so a GROUP BY over market_data would read every row.
UPDATE symbols s
SET listed_on = (least(
        (SELECT m.ts FROM market_data m WHERE m.symbol = s.symbol AND m.interval = '1h' ORDER BY m.ts LIMIT 1),
        (SELECT m.ts FROM market_data m WHERE m.symbol = s.symbol AND m.interval = '1d' ORDER BY m.ts LIMIT 1))
    AT TIME ZONE 'America/New_York')::date
WHERE s.listed_on IS NULL;

CREATE FUNCTION universe_asof(day date)
RETURNS TABLE (symbol text, listed_on date, delisted_on date, active boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.symbol, s.listed_on, s.delisted_on, s.active
    FROM symbols s
    WHERE EXISTS (SELECT FROM market_sessions m WHERE m.session_date = universe_asof.day)
      AND s.listed_on <= universe_asof.day
      AND (s.delisted_on IS NULL OR universe_asof.day <= s.delisted_on)
    ORDER BY s.symbol
$$;
COMMENT ON FUNCTION universe_asof(date) IS
    'The symbols of the store trading on the NYSE session `day` (New York date): listed_on <= day and '
    'not delisted before it (delisted symbols are included for the days they traded, so a backtest over '
    'the past keeps them). No rows when `day` is not a session (weekend, holiday, or beyond market_sessions).';
