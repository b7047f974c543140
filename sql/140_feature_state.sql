-- The recurrence state of the carried features (mfs.features.state): per series, TA-Lib's running
-- averages after its newest feature row and after its last complete one (the partial current
-- hour is overwritten by the next ingest, and the next run starts there), so that the next
-- hour's EMA, MACD, RSI, ATR/NATR and ADX/DI read a row instead of the 400 bars of look-back
-- their smoothing needs. A state is used
-- only when its bar is the one just before the first bar to compute and its signature is that of
-- the run's carried definitions; otherwise the run falls back to the look-back and writes a new one.
-- Internal: written and read by the feature workers in their batch's transaction, never served.
CREATE TABLE feature_state (
    symbol          text        NOT NULL,
    interval        text        NOT NULL,
    ts              timestamptz NOT NULL,
    feature_version integer     NOT NULL,
    signature       text        NOT NULL,
    state           bytea       NOT NULL,
    PRIMARY KEY (symbol, interval, ts)
);
COMMENT ON TABLE feature_state IS
    'Per series, the carried features'' recurrence state after the bar ts (mfs.features.state)';
COMMENT ON COLUMN feature_state.signature IS 'the carried definitions and versions the state belongs to';
COMMENT ON COLUMN feature_state.state IS
    'the carried definitions'' states end to end, in definition order, as little-endian float8';
-- Internal, like feature_drift_counts: the default privileges (sql/034) would let mfs_reader read it.
REVOKE SELECT ON feature_state FROM mfs_reader;
