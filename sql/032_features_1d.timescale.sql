-- features_1d as a continuous aggregate (community license): per symbol and New York day, the
-- day's last value of every feature column. Same columns as 032_features_1d.apache.sql; real-time
-- aggregation on for the reasons given in 031_ohlcv_aggregates.timescale.sql.
CREATE MATERIALIZED VIEW features_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket('1 day', ts, 'America/New_York') AS day,
       max(ts) AS last_ts, last(feature_version, ts) AS feature_version,
       last(return_1, ts) AS return_1,
       last(return_5, ts) AS return_5,
       last(return_20, ts) AS return_20,
       last(log_return_1, ts) AS log_return_1,
       last(sma_5, ts) AS sma_5,
       last(sma_10, ts) AS sma_10,
       last(sma_20, ts) AS sma_20,
       last(sma_50, ts) AS sma_50,
       last(sma_200, ts) AS sma_200,
       last(ema_12, ts) AS ema_12,
       last(ema_26, ts) AS ema_26,
       last(macd, ts) AS macd,
       last(macd_signal, ts) AS macd_signal,
       last(macd_hist, ts) AS macd_hist,
       last(rsi_14, ts) AS rsi_14,
       last(bb_upper, ts) AS bb_upper,
       last(bb_lower, ts) AS bb_lower,
       last(bb_width, ts) AS bb_width,
       last(bb_pctb, ts) AS bb_pctb,
       last(atr_14, ts) AS atr_14,
       last(natr_14, ts) AS natr_14,
       last(adx_14, ts) AS adx_14,
       last(plus_di_14, ts) AS plus_di_14,
       last(minus_di_14, ts) AS minus_di_14,
       last(stoch_k, ts) AS stoch_k,
       last(stoch_d, ts) AS stoch_d,
       last(willr_14, ts) AS willr_14,
       last(cci_20, ts) AS cci_20,
       last(obv, ts) AS obv,
       last(mfi_14, ts) AS mfi_14,
       last(vwap_20, ts) AS vwap_20,
       last(roc_10, ts) AS roc_10,
       last(volatility_20, ts) AS volatility_20,
       last(volume_sma_20, ts) AS volume_sma_20,
       last(volume_ratio_20, ts) AS volume_ratio_20,
       last(range_pct, ts) AS range_pct,
       last(hour_et, ts) AS hour_et,
       last(dow_et, ts) AS dow_et
FROM features
WHERE interval = '1h'
GROUP BY symbol, time_bucket('1 day', ts, 'America/New_York')
WITH NO DATA;
COMMENT ON VIEW features_1d IS 'Per symbol and New York day, the last hourly value of every feature; always current';

-- Refresh, compression and retention policies: mfs_apply_policies, defined in
-- sql/functions/mfs_apply_policies.timescale.sql (a repeatable file, applied after the numbered
-- migrations); `mfs db up` applies them after every migrate.
