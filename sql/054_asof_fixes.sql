-- Fixes of 050/051 found by the point-in-time tests.
--
-- 1. An "as of" answer reports the version as it stood then: a version valid at known_at was the
--    current one at that moment, so its known_to is 'infinity' and it has no reason or run of
--    replacement yet. Returning the revision's known_to/reason/run_id leaked what happened after
--    known_at and broke byte-identical reproduction of a past result.
-- 2. latest_features was created with `f.*`, expanded when 033 ran: it lacked closes_at.
-- 3. A row written without closes_at (a hand-written INSERT) is read with bar_closes_at(), so it
--    is judged complete or not like every other row (the writers always store it).

CREATE OR REPLACE VIEW latest_features AS
SELECT f.*
FROM stored_series s
CROSS JOIN LATERAL (SELECT * FROM features f
                    WHERE f.symbol = s.symbol AND f.interval = s.interval
                    ORDER BY f.ts DESC LIMIT 1) f;

CREATE OR REPLACE VIEW bar_versions AS
SELECT m.ingested_at AS known_from, m.ingested_at >= coalesce(m.closes_at, bar_closes_at(m.interval, m.ts)) AS complete,
       'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, m.*
FROM market_data m
UNION ALL
SELECT r.ingested_at, r.ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)), r.*
FROM market_data_revisions r;

CREATE OR REPLACE VIEW feature_versions AS
SELECT f.computed_at AS known_from,
       f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
       'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, f.*
FROM features f
UNION ALL
SELECT r.computed_at, r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)), r.*
FROM features_revisions r;

CREATE OR REPLACE FUNCTION features_asof(symbols text[], at timestamptz[], known_at timestamptz DEFAULT NULL,
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
            (SELECT f.computed_at, f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)), 'infinity'::timestamptz, NULL::text, NULL::text, f.*
             WHERE f.computed_at <= q.k AND (served OR f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts))))
            UNION ALL
            (SELECT r.computed_at, r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)),
                    'infinity'::timestamptz, NULL::text, NULL::text, b.*
             FROM features_revisions r
             CROSS JOIN LATERAL jsonb_populate_record(NULL::features, to_jsonb(r)) b
             WHERE r.symbol = f.symbol AND r.interval = f.interval AND r.ts = f.ts
               AND r.computed_at <= q.k AND q.k < r.known_to AND (served OR r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)))
             LIMIT 1)
            LIMIT 1) c
        WHERE f.symbol = e.symbol AND f.interval = bar_interval AND f.ts <= e.at
          AND (served OR coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) <= e.at)
          AND (tolerance IS NULL OR (coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) >= e.at - tolerance AND f.ts >= e.at - tolerance - interval '1 day'))
        ORDER BY f.ts DESC
        LIMIT 1) v;
END $$;
COMMENT ON FUNCTION features_asof(text[], timestamptz[], timestamptz, text, interval, text) IS
    'Per (symbols[i], at[i]): the newest feature row whose bar closed by at, as known at known_at (default at); mode served: what latest_features served at at';

CREATE OR REPLACE FUNCTION bars_asof(symbols text[], at timestamptz[], known_at timestamptz DEFAULT NULL,
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
            (SELECT m.ingested_at, m.ingested_at >= coalesce(m.closes_at, bar_closes_at(m.interval, m.ts)), 'infinity'::timestamptz, NULL::text, NULL::text, m.*
             WHERE m.ingested_at <= q.k AND (served OR m.ingested_at >= coalesce(m.closes_at, bar_closes_at(m.interval, m.ts))))
            UNION ALL
            (SELECT r.ingested_at, r.ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)),
                    'infinity'::timestamptz, NULL::text, NULL::text, b.*
             FROM market_data_revisions r
             CROSS JOIN LATERAL jsonb_populate_record(NULL::market_data, to_jsonb(r)) b
             WHERE r.symbol = m.symbol AND r.interval = m.interval AND r.ts = m.ts
               AND r.ingested_at <= q.k AND q.k < r.known_to AND (served OR r.ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)))
             LIMIT 1)
            LIMIT 1) c
        WHERE m.symbol = e.symbol AND m.interval = bar_interval AND m.ts <= e.at
          AND (served OR coalesce(m.closes_at, bar_closes_at(m.interval, m.ts)) <= e.at)
          AND (tolerance IS NULL OR (coalesce(m.closes_at, bar_closes_at(m.interval, m.ts)) >= e.at - tolerance AND m.ts >= e.at - tolerance - interval '1 day'))
        ORDER BY m.ts DESC
        LIMIT 1) v;
END $$;
COMMENT ON FUNCTION bars_asof(text[], timestamptz[], timestamptz, text, interval, text) IS
    'Per (symbols[i], at[i]): the newest bar that closed by at, as known at known_at (default at); mode served: the newest bar stored at at';
