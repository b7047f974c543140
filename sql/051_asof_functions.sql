-- "As of" lookups for SQL users (mfs_reader may call them; they run with the caller's rights).
--
-- features_asof(symbols, at, known_at, bar_interval, tolerance, mode) pairs symbols[i] with
-- at[i] and returns, per pair, the newest feature row version
--   mode 'known' (default): whose bar had CLOSED by at, that was complete, and that the store
--     held at known_at (known_from <= known_at < known_to); known_at defaults to at itself —
--     exactly what a live system could have used — and now() gives today's corrected values
--     with no look-ahead in bar time;
--   mode 'served': that latest_features served at at (known_from <= at < known_to), partial bars
--     included — a replay of live inference; known_at does not apply.
-- With a tolerance, a pair whose newest such bar closed more than tolerance before at gets no
-- row (rather than a stale one). A pair with no answer has no row: join back on `entity` (the
-- pair's 1-based position). bars_asof does the same for OHLCV.
--

CREATE VIEW features_asof_row AS
SELECT NULL::bigint AS entity, NULL::timestamptz AS at, NULL::timestamptz AS known_at, v.*
FROM feature_versions v WHERE false;
COMMENT ON VIEW features_asof_row IS 'The row type of features_asof (always empty)';

CREATE VIEW bars_asof_row AS
SELECT NULL::bigint AS entity, NULL::timestamptz AS at, NULL::timestamptz AS known_at, v.*
FROM bar_versions v WHERE false;
COMMENT ON VIEW bars_asof_row IS 'The row type of bars_asof (always empty)';

-- One clear error for arguments that cannot be answered.
CREATE FUNCTION asof_check_arguments(symbols text[], at timestamptz[], bar_interval text, tolerance interval, mode text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF coalesce(cardinality(symbols), 0) <> coalesce(cardinality(at), 0) THEN
        RAISE EXCEPTION 'symbols and at pair up element by element: % symbols, % timestamps',
            coalesce(cardinality(symbols), 0), coalesce(cardinality(at), 0) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF bar_interval IS NULL OR bar_interval NOT IN ('1h', '1d') THEN
        RAISE EXCEPTION 'bar_interval must be ''1h'' or ''1d'', not %', coalesce(quote_literal(bar_interval), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mode IS NULL OR mode NOT IN ('known', 'served') THEN
        RAISE EXCEPTION 'mode must be ''known'' or ''served'', not %', coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF tolerance < interval '0' THEN
        RAISE EXCEPTION 'tolerance must not be negative, not %', tolerance USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- features_asof and bars_asof themselves are defined in sql/functions/asof.sql (a repeatable
-- file, applied after the numbered migrations).
