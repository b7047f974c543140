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
-- How: walk the symbol's current rows back from at (one index scan) and take, for each bar, the
-- current version or the revision valid at known_at, until one qualifies. A bar whose rows were
-- all deleted is not on that walk (nothing in the store deletes bars; retention drops whole
-- chunks with their revisions).

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

CREATE FUNCTION features_asof(symbols text[], at timestamptz[], known_at timestamptz DEFAULT NULL,
                              bar_interval text DEFAULT '1h', tolerance interval DEFAULT NULL,
                              mode text DEFAULT 'known')
RETURNS SETOF features_asof_row
LANGUAGE plpgsql STABLE AS $$
DECLARE
    served boolean := mode = 'served';
BEGIN
    PERFORM asof_check_arguments(symbols, at, bar_interval, tolerance, mode);
    RETURN QUERY
    SELECT e.i, e.at, q.k, v.*
    FROM unnest(symbols, at) WITH ORDINALITY AS e(symbol, at, i)
    CROSS JOIN LATERAL (SELECT CASE WHEN served THEN e.at ELSE coalesce(known_at, e.at) END AS k) q
    CROSS JOIN LATERAL (
        SELECT c.*
        FROM features f
        CROSS JOIN LATERAL (
            (SELECT f.computed_at, f.bar_ingested_at >= f.closes_at, 'infinity'::timestamptz, NULL::text, NULL::text, f.*
             WHERE f.computed_at <= q.k AND (served OR f.bar_ingested_at >= f.closes_at))
            UNION ALL
            (SELECT r.computed_at, r.bar_ingested_at >= r.closes_at, r.*
             FROM features_revisions r
             WHERE r.symbol = f.symbol AND r.interval = f.interval AND r.ts = f.ts
               AND r.computed_at <= q.k AND q.k < r.known_to AND (served OR r.bar_ingested_at >= r.closes_at)
             LIMIT 1)
            LIMIT 1) c
        WHERE f.symbol = e.symbol AND f.interval = bar_interval AND f.ts <= e.at
          AND (served OR f.closes_at <= e.at)
          AND (tolerance IS NULL OR (f.closes_at >= e.at - tolerance AND f.ts >= e.at - tolerance - interval '1 day'))
        ORDER BY f.ts DESC
        LIMIT 1) v;
END $$;
COMMENT ON FUNCTION features_asof(text[], timestamptz[], timestamptz, text, interval, text) IS
    'Per (symbols[i], at[i]): the newest feature row whose bar closed by at, as known at known_at (default at); mode served: what latest_features served at at';

CREATE FUNCTION bars_asof(symbols text[], at timestamptz[], known_at timestamptz DEFAULT NULL,
                          bar_interval text DEFAULT '1h', tolerance interval DEFAULT NULL,
                          mode text DEFAULT 'known')
RETURNS SETOF bars_asof_row
LANGUAGE plpgsql STABLE AS $$
DECLARE
    served boolean := mode = 'served';
BEGIN
    PERFORM asof_check_arguments(symbols, at, bar_interval, tolerance, mode);
    RETURN QUERY
    SELECT e.i, e.at, q.k, v.*
    FROM unnest(symbols, at) WITH ORDINALITY AS e(symbol, at, i)
    CROSS JOIN LATERAL (SELECT CASE WHEN served THEN e.at ELSE coalesce(known_at, e.at) END AS k) q
    CROSS JOIN LATERAL (
        SELECT c.*
        FROM market_data m
        CROSS JOIN LATERAL (
            (SELECT m.ingested_at, m.ingested_at >= m.closes_at, 'infinity'::timestamptz, NULL::text, NULL::text, m.*
             WHERE m.ingested_at <= q.k AND (served OR m.ingested_at >= m.closes_at))
            UNION ALL
            (SELECT r.ingested_at, r.ingested_at >= r.closes_at, r.*
             FROM market_data_revisions r
             WHERE r.symbol = m.symbol AND r.interval = m.interval AND r.ts = m.ts
               AND r.ingested_at <= q.k AND q.k < r.known_to AND (served OR r.ingested_at >= r.closes_at)
             LIMIT 1)
            LIMIT 1) c
        WHERE m.symbol = e.symbol AND m.interval = bar_interval AND m.ts <= e.at
          AND (served OR m.closes_at <= e.at)
          AND (tolerance IS NULL OR (m.closes_at >= e.at - tolerance AND m.ts >= e.at - tolerance - interval '1 day'))
        ORDER BY m.ts DESC
        LIMIT 1) v;
END $$;
COMMENT ON FUNCTION bars_asof(text[], timestamptz[], timestamptz, text, interval, text) IS
    'Per (symbols[i], at[i]): the newest bar that closed by at, as known at known_at (default at); mode served: the newest bar stored at at';
