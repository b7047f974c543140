-- TRUNCATE fires no row or insert/update/delete statement triggers, so emptying market_data or
-- features (to reload a store) logged nothing and the rollups kept every bucket. A TRUNCATE
-- trigger logs, per symbol, the whole span its rollup holds; the next refresh then removes those
-- buckets (their bars are gone). (The community-license variant of this migration concerns the
-- continuous aggregates' refresh policies.)
CREATE FUNCTION log_truncate_invalidation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[0] = 'market_data' THEN
        INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
        SELECT 'market_data', symbol, '1h', min(day), max(day) FROM ohlcv_1d_rollup GROUP BY symbol;
    ELSE
        INSERT INTO aggregate_invalidations (source, symbol, interval, lo, hi)
        SELECT 'features', symbol, '1h', min(day), max(day) FROM features_1d_rollup GROUP BY symbol;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER market_data_invalidate_truncate AFTER TRUNCATE ON market_data
    FOR EACH STATEMENT EXECUTE FUNCTION log_truncate_invalidation('market_data');
CREATE TRIGGER features_invalidate_truncate AFTER TRUNCATE ON features
    FOR EACH STATEMENT EXECUTE FUNCTION log_truncate_invalidation('features');
