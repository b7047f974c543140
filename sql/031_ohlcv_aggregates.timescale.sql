-- Daily and weekly OHLCV as continuous aggregates (community license). Same public names and
-- columns as the Apache-edition rollups (031_ohlcv_aggregates.apache.sql).
--
-- Created WITH NO DATA: a refresh cannot run inside a transaction (this migration is one);
-- mfs.aggregates.refresh() and the refresh policies (mfs_apply_policies, called after migrating
-- with values from config) fill them outside transactions.
--
-- Real-time aggregation is ON (materialized_only = false), deliberately: since 2.13 it is off by
-- default, and then a query misses every bar newer than the last refresh — up to an hour on the
-- policy schedule. Users expect "always current" (the Apache path gives that too). Its cost is a
-- scan of the raw bars above the watermark, which the hourly policy and the refresh after every
-- pipeline run keep to about one hour of bars. Real-time aggregation does NOT cover late data
-- below the watermark: the pipeline's refresh after each run (window NULL..NULL processes every
-- invalidated range) does.

CREATE MATERIALIZED VIEW ohlcv_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket('1 day', ts, 'America/New_York') AS day,
       first(open, ts) AS open, max(high) AS high, min(low) AS low, last(close, ts) AS close,
       sum(volume)::bigint AS volume, count(*) AS bar_count
FROM market_data
WHERE interval = '1h'
GROUP BY symbol, time_bucket('1 day', ts, 'America/New_York')
WITH NO DATA;
COMMENT ON VIEW ohlcv_1d IS 'Daily OHLCV per symbol from hourly bars, bucketed by the New York trading day; always current';

-- Hierarchical continuous aggregate (supported since 2.9); weeks start on Monday, New York time.
CREATE MATERIALIZED VIEW ohlcv_1w
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket('1 week', day, 'America/New_York') AS week,
       first(open, day) AS open, max(high) AS high, min(low) AS low, last(close, day) AS close,
       sum(volume)::bigint AS volume, sum(bar_count)::bigint AS bar_count
FROM ohlcv_1d
GROUP BY symbol, time_bucket('1 week', day, 'America/New_York')
WITH NO DATA;
COMMENT ON VIEW ohlcv_1w IS 'Weekly OHLCV per symbol (weeks start Monday, New York time) from ohlcv_1d; always current';

-- Compression of the raw hypertables. Segmenting by series keeps a symbol's reads local; the
-- policy (mfs_apply_policies) only compresses chunks entirely older than the ingest window, so
-- the hourly upserts (ON CONFLICT into compressed chunks is slow) never touch compressed data.
ALTER TABLE market_data SET (timescaledb.compress,
                             timescaledb.compress_segmentby = 'symbol, interval',
                             timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE features SET (timescaledb.compress,
                          timescaledb.compress_segmentby = 'symbol, interval',
                          timescaledb.compress_orderby = 'ts DESC');
