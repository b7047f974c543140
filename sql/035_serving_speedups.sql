-- Serving speed-ups for both editions (figures: 500 symbols × 1 year of hourly bars).

-- Planner estimates for the serving views (generate_series, window merges, unions) cross jit_above_cost, and
-- JIT compilation then costs ~200 ms on queries that run in 4 ms (measured: ohlcv_1w for one
-- symbol, 230 ms with JIT, 3.7 ms without). The serving queries are short: no JIT here.
-- Needs the database's owner (or a superuser); elsewhere the setting is left to the DBA.
DO $$ BEGIN
    IF pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
    ELSE
        RAISE NOTICE 'not the owner of database %: leaving jit as configured', current_database();
    END IF;
END $$;

-- missing_sessions: 15.5 s → 0.9 s for all series, 110 → 85 ms for one symbol. Hourly series
-- test each session against ohlcv_1d (one row per symbol-day, always current) and daily series
-- against their day labels, in one hashed anti-join instead of one probe of the bars per session.
CREATE OR REPLACE VIEW missing_sessions AS
WITH expected AS (
    SELECT s.symbol, s.interval, ms.session_date, ms.day_start, ms.half_day
    FROM stored_series s
    CROSS JOIN LATERAL (SELECT min(m.ts) AS first_bar FROM market_data m
                        WHERE m.symbol = s.symbol AND m.interval = s.interval) f
    JOIN market_sessions ms ON ms.day_end > f.first_bar AND ms.open_utc <= now()
), present AS (
    SELECT symbol, '1h'::text AS interval, day FROM ohlcv_1d
    UNION ALL
    SELECT symbol, interval, time_bucket('1 day', ts, 'America/New_York') FROM market_data WHERE interval = '1d'
)
SELECT e.* FROM expected e
WHERE NOT EXISTS (SELECT 1 FROM present p
                  WHERE p.symbol = e.symbol AND p.interval = e.interval AND p.day = e.day_start);
