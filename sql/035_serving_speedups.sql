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

-- missing_sessions reads the daily rows (15.5 s → 0.9 s for all series): sql/views/missing_sessions
-- (repeatable files, applied after the numbered migrations).
