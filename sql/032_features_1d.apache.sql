-- features_1d on the Apache edition: per symbol and New York day, the day's last value of every
-- feature column (the value at the day's last hourly bar, NULL when that bar's value is NULL).
-- Same pattern as 031_ohlcv_aggregates.apache.sql: writes log invalidations, refresh recomputes
-- them into features_1d_rollup, the public view adds the pending days computed live.

CREATE TRIGGER features_invalidate_insert AFTER INSERT ON features
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('features');
CREATE TRIGGER features_invalidate_update AFTER UPDATE ON features
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('features');
CREATE TRIGGER features_invalidate_delete AFTER DELETE ON features
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION log_aggregate_invalidation('features');

CREATE VIEW features_1d_live AS
SELECT p.symbol, p.day, b.*
FROM aggregate_pending_days p
CROSS JOIN LATERAL (
    SELECT max(f.ts) AS last_ts, last(f.feature_version, f.ts) AS feature_version,
           last(f.return_1, f.ts) AS return_1,
           last(f.return_5, f.ts) AS return_5,
           last(f.return_20, f.ts) AS return_20,
           last(f.log_return_1, f.ts) AS log_return_1,
           last(f.sma_5, f.ts) AS sma_5,
           last(f.sma_10, f.ts) AS sma_10,
           last(f.sma_20, f.ts) AS sma_20,
           last(f.sma_50, f.ts) AS sma_50,
           last(f.sma_200, f.ts) AS sma_200,
           last(f.ema_12, f.ts) AS ema_12,
           last(f.ema_26, f.ts) AS ema_26,
           last(f.macd, f.ts) AS macd,
           last(f.macd_signal, f.ts) AS macd_signal,
           last(f.macd_hist, f.ts) AS macd_hist,
           last(f.rsi_14, f.ts) AS rsi_14,
           last(f.bb_upper, f.ts) AS bb_upper,
           last(f.bb_lower, f.ts) AS bb_lower,
           last(f.bb_width, f.ts) AS bb_width,
           last(f.bb_pctb, f.ts) AS bb_pctb,
           last(f.atr_14, f.ts) AS atr_14,
           last(f.natr_14, f.ts) AS natr_14,
           last(f.adx_14, f.ts) AS adx_14,
           last(f.plus_di_14, f.ts) AS plus_di_14,
           last(f.minus_di_14, f.ts) AS minus_di_14,
           last(f.stoch_k, f.ts) AS stoch_k,
           last(f.stoch_d, f.ts) AS stoch_d,
           last(f.willr_14, f.ts) AS willr_14,
           last(f.cci_20, f.ts) AS cci_20,
           last(f.obv, f.ts) AS obv,
           last(f.mfi_14, f.ts) AS mfi_14,
           last(f.vwap_20, f.ts) AS vwap_20,
           last(f.roc_10, f.ts) AS roc_10,
           last(f.volatility_20, f.ts) AS volatility_20,
           last(f.volume_sma_20, f.ts) AS volume_sma_20,
           last(f.volume_ratio_20, f.ts) AS volume_ratio_20,
           last(f.range_pct, f.ts) AS range_pct,
           last(f.hour_et, f.ts) AS hour_et,
           last(f.dow_et, f.ts) AS dow_et
    FROM features f
    WHERE f.symbol = p.symbol AND f.interval = '1h'
      AND f.ts >= p.day AND f.ts < ny_plus(p.day, interval '1 day')
) b
WHERE p.source = 'features' AND b.last_ts IS NOT NULL;

CREATE TABLE features_1d_rollup AS SELECT * FROM features_1d_live WITH NO DATA;
ALTER TABLE features_1d_rollup ADD PRIMARY KEY (symbol, day);
SELECT create_hypertable('features_1d_rollup', by_range('day', INTERVAL '365 days'));

CREATE VIEW features_1d AS
SELECT r.* FROM features_1d_rollup r
WHERE NOT EXISTS (SELECT 1 FROM aggregate_pending_days p
                  WHERE p.source = 'features' AND p.symbol = r.symbol AND p.day = r.day)
UNION ALL
SELECT * FROM features_1d_live;
COMMENT ON VIEW features_1d IS 'Per symbol and New York day, the last hourly value of every feature; always current';
