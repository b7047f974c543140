-- Daily and weekly OHLCV on the Apache edition, where TimescaleDB refuses continuous aggregates
-- (they need the community license). Same public names and columns as the community-license
-- continuous aggregates (031_ohlcv_aggregates.timescale.sql); the design mirrors theirs with one
-- improvement:
--
--   writes ──statement triggers──▶ aggregate_invalidations (source, symbol, interval, lo, hi)
--   mfs.aggregates.refresh(): recompute only the invalidated New York days/weeks into the
--       *_rollup hypertables and delete the log entries it processed, in one transaction
--   ohlcv_1d / ohlcv_1w (views) = rollup rows of settled buckets
--                                 UNION ALL the invalidated buckets computed live
--
-- so a query is always current, including late backfills and corrections of old bars that a
-- continuous aggregate's real-time part (which only covers buckets above its watermark) misses.
-- Neither the ingest nor the features code knows about any of this.

CREATE TABLE aggregate_invalidations (
    id        bigserial PRIMARY KEY,
    source    text NOT NULL CHECK (source IN ('market_data', 'features')),
    symbol    text NOT NULL,
    interval  text NOT NULL,
    lo        timestamptz NOT NULL,
    hi        timestamptz NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now(),
    CHECK (lo <= hi)
);
CREATE INDEX aggregate_invalidations_symbol ON aggregate_invalidations (source, symbol);

-- One row per (symbol, interval) per statement: an hourly upsert of 500 symbols logs 500 rows,
-- a year's backfill of one symbol one row (measured ~16% of raw COPY speed).
CREATE FUNCTION log_aggregate_invalidation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
        SELECT TG_ARGV[0], symbol, interval, min(ts), max(ts) FROM new_rows GROUP BY symbol, interval;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
        SELECT TG_ARGV[0], symbol, interval, min(ts), max(ts) FROM old_rows GROUP BY symbol, interval;
    ELSE  -- an UPDATE may move a row: both the old and the new place change
        INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
        SELECT TG_ARGV[0], symbol, interval, min(ts), max(ts)
        FROM (SELECT symbol, interval, ts FROM old_rows UNION ALL SELECT symbol, interval, ts FROM new_rows) changed
        GROUP BY symbol, interval;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER market_data_invalidate_insert AFTER INSERT ON market_data
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('market_data');
CREATE TRIGGER market_data_invalidate_update AFTER UPDATE ON market_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('market_data');
CREATE TRIGGER market_data_invalidate_delete AFTER DELETE ON market_data
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('market_data');

-- The New York days (and Monday-based weeks) with changes not yet in the rollups. Only hourly
-- rows feed the aggregates; daily bars come from Yahoo already aggregated.
CREATE VIEW aggregate_pending_days AS
SELECT DISTINCT i.source, i.symbol, (d::timestamp AT TIME ZONE 'America/New_York') AS day
FROM aggregate_invalidations i
CROSS JOIN LATERAL generate_series((i.lo AT TIME ZONE 'America/New_York')::date,
                                   (i.hi AT TIME ZONE 'America/New_York')::date, interval '1 day') AS d
WHERE i.interval = '1h';

CREATE VIEW aggregate_pending_weeks AS
SELECT DISTINCT source, symbol, time_bucket('1 week', day, 'America/New_York') AS week
FROM aggregate_pending_days;

-- The pending days computed from the raw bars. A day whose bars were all deleted yields no row.
-- Equal by construction to GROUP BY time_bucket('1 day', ts, 'America/New_York').
CREATE VIEW ohlcv_1d_live AS
SELECT p.symbol, p.day, b.open, b.high, b.low, b.close, b.volume, b.bar_count
FROM aggregate_pending_days p
CROSS JOIN LATERAL (
    SELECT first(m.open, m.ts) AS open, max(m.high) AS high, min(m.low) AS low,
           last(m.close, m.ts) AS close, sum(m.volume)::bigint AS volume, count(*) AS bar_count
    FROM market_data m
    WHERE m.symbol = p.symbol AND m.interval = '1h'
      AND m.ts >= p.day AND m.ts < ny_plus(p.day, interval '1 day')
) b
WHERE p.source = 'market_data' AND b.bar_count > 0;

-- Rollup tables take their columns from the live queries, so the two can never drift apart.
CREATE TABLE ohlcv_1d_rollup AS SELECT * FROM ohlcv_1d_live WITH NO DATA;
ALTER TABLE ohlcv_1d_rollup ADD PRIMARY KEY (symbol, day);
-- 500 symbols × 252 sessions ≈ 126k rows a year: yearly chunks keep a 1-year read in one chunk.
SELECT create_hypertable('ohlcv_1d_rollup', by_range('day', INTERVAL '365 days'));

CREATE VIEW ohlcv_1d AS
SELECT r.* FROM ohlcv_1d_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_days p
                  WHERE p.source = 'market_data' AND p.symbol = r.symbol AND p.day = r.day)
UNION ALL
SELECT * FROM ohlcv_1d_live;
COMMENT ON VIEW ohlcv_1d IS 'Daily OHLCV per symbol from hourly bars, bucketed by the New York trading day; always current';

-- Weeks start on Monday, New York time (time_bucket's default origin 2000-01-03 is a Monday),
-- built from the (always current) daily view, like a hierarchical continuous aggregate.
CREATE VIEW ohlcv_1w_live AS
SELECT p.symbol, p.week, b.open, b.high, b.low, b.close, b.volume, b.bar_count
FROM aggregate_pending_weeks p
CROSS JOIN LATERAL (
    SELECT first(d.open, d.day) AS open, max(d.high) AS high, min(d.low) AS low,
           last(d.close, d.day) AS close, sum(d.volume)::bigint AS volume, sum(d.bar_count)::bigint AS bar_count
    FROM ohlcv_1d d
    WHERE d.symbol = p.symbol AND d.day >= p.week AND d.day < ny_plus(p.week, interval '7 days')
) b
WHERE p.source = 'market_data' AND b.bar_count > 0;

CREATE TABLE ohlcv_1w_rollup AS SELECT * FROM ohlcv_1w_live WITH NO DATA;
ALTER TABLE ohlcv_1w_rollup ADD PRIMARY KEY (symbol, week);
SELECT create_hypertable('ohlcv_1w_rollup', by_range('week', INTERVAL '3650 days'));

CREATE VIEW ohlcv_1w AS
SELECT r.* FROM ohlcv_1w_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_weeks p
                  WHERE p.source = 'market_data' AND p.symbol = r.symbol AND p.week = r.week)
UNION ALL
SELECT * FROM ohlcv_1w_live;
COMMENT ON VIEW ohlcv_1w IS 'Weekly OHLCV per symbol (weeks start Monday, New York time) from ohlcv_1d; always current';
