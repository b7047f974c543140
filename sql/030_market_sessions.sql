-- NYSE sessions for SQL. SQL cannot call exchange_calendars, so Python
-- (mfs.aggregates.sync_sessions, run by `mfs db up` and every aggregate refresh) fills this table
-- from mfs.calendar; the serving views (freshness, missing sessions) join it.
-- day_start is the session date's New York midnight in UTC (the daily-bar label convention and the
-- `day` of ohlcv_1d); day_end the next New York midnight, so [day_start, day_end) holds every bar
-- of the session whatever the DST offset.
CREATE TABLE market_sessions (
    day_start    timestamptz PRIMARY KEY,
    session_date date GENERATED ALWAYS AS ((day_start AT TIME ZONE 'America/New_York')::date) STORED UNIQUE,
    day_end      timestamptz NOT NULL,
    open_utc     timestamptz NOT NULL,
    close_utc    timestamptz NOT NULL,
    half_day     boolean NOT NULL,
    CHECK (day_start < open_utc AND open_utc < close_utc AND close_utc < day_end)
);
CREATE INDEX market_sessions_open ON market_sessions (open_utc);

-- The next New York calendar boundary: `ny_plus(day, '1 day')` is the end of the NY day that
-- starts at `day` (23 or 25 hours on DST changes; adding '1 day' to a timestamptz in a UTC
-- session would add 24 hours).
CREATE FUNCTION ny_plus(ts timestamptz, step interval) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((ts AT TIME ZONE 'America/New_York') + step) AT TIME ZONE 'America/New_York';
