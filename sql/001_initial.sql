-- Initial schema. Timestamps are timestamptz and stored in UTC; New York time is derived only
-- where a market concept needs it. TimescaleDB requires the time column in every unique key.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE symbols (
    symbol    text PRIMARY KEY CHECK (symbol ~ '^\^?[A-Z0-9][A-Z0-9.=-]{0,14}$'),
    name      text,
    exchange  text,
    active    boolean NOT NULL DEFAULT true,
    added_at  timestamptz NOT NULL DEFAULT now()
);

-- Bars. Hourly bars are labelled by their start (09:30, 10:30 … 15:30 New York time); daily bars
-- by the session date's New York midnight. Hourly and daily never mix: interval is in the key.
CREATE TABLE market_data (
    symbol      text NOT NULL,
    interval    text NOT NULL CHECK (interval IN ('1h', '1d')),
    ts          timestamptz NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    adj_close   double precision,          -- Yahoo sends no adjusted close for intraday bars
    volume      bigint NOT NULL,
    source      text NOT NULL DEFAULT 'yahoo',
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, ts),
    -- Last line of defence behind the ingest validation: nothing impossible is ever stored.
    CONSTRAINT market_data_prices_positive CHECK (open > 0 AND high > 0 AND low > 0 AND close > 0
                                                  AND (adj_close IS NULL OR adj_close > 0)),
    CONSTRAINT market_data_range CHECK (low <= least(open, close) AND high >= greatest(open, close)),
    CONSTRAINT market_data_volume CHECK (volume >= 0)
);
-- 30-day chunks: 500 symbols × 7 hourly bars × ~21 sessions ≈ 75k rows (~15 MB with index) per
-- chunk, a few chunks per year — small enough to stay in memory, coarse enough that the hourly
-- ingest window (7 days) touches at most two chunks and retention drops whole months.
SELECT create_hypertable('market_data', by_range('ts', INTERVAL '30 days'));

-- Feature rows, one per bar; the indicator columns are added by the features migration.
CREATE TABLE features (
    symbol          text NOT NULL,
    interval        text NOT NULL CHECK (interval IN ('1h', '1d')),
    ts              timestamptz NOT NULL,
    feature_version integer NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, ts)
);
-- Same chunking as market_data so a bar and its features age (and are dropped) together.
SELECT create_hypertable('features', by_range('ts', INTERVAL '30 days'));

CREATE TABLE pipeline_runs (
    run_id        text PRIMARY KEY,
    flow          text NOT NULL,
    parameters    jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed', 'crashed', 'market_closed')),
    counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    error_summary text
);
CREATE INDEX pipeline_runs_flow_started ON pipeline_runs (flow, started_at DESC);

CREATE TABLE symbol_runs (
    run_id           text NOT NULL REFERENCES pipeline_runs (run_id) ON DELETE CASCADE,
    symbol           text NOT NULL,
    stage            text NOT NULL,           -- e.g. collect_1h, collect_1d, features_1h
    status           text NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
    reason           text,
    rows_fetched     integer NOT NULL DEFAULT 0,
    rows_inserted    integer NOT NULL DEFAULT 0,
    rows_updated     integer NOT NULL DEFAULT 0,
    rows_quarantined integer NOT NULL DEFAULT 0,
    rows_written     integer NOT NULL DEFAULT 0,
    duration_s       double precision,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, symbol, stage)
);

CREATE TABLE quarantine (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    symbol      text,
    interval    text,
    ts          timestamptz,                  -- NULL when the timestamp itself was unusable
    raw         jsonb NOT NULL,
    reason      text NOT NULL,
    run_id      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_symbol_ts ON quarantine (symbol, interval, ts);
