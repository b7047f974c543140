-- features_asof(symbols, at, known_at, bar_interval, tolerance, mode) and bars_asof (same
-- arguments), for SQL users (mfs_reader may call them; they run with the caller's rights): one
-- definition, applied once per `mfs:twin` line below with its table and column names.
--
-- They pair symbols[i] with at[i] and return, per pair, the newest row version (feature row or bar)
--   mode 'known' (default): whose bar had CLOSED by at, that was complete, and that the store
--     held at known_at (known_from <= known_at < known_to); known_at defaults to at itself —
--     exactly what a live system could have used — and now() gives today's corrected values
--     with no look-ahead in bar time;
--   mode 'served': that was stored (latest_features served) at at (known_from <= at < known_to),
--     partial bars included — a replay of live inference; known_at does not apply.
-- With a tolerance, a pair whose newest such bar closed more than tolerance before at gets no
-- row (rather than a stale one). A pair with no answer has no row: join back on `entity` (the
-- pair's 1-based position). The row types are features_asof_row / bars_asof_row (sql/051, the
-- feature one generated with the feature columns).
--
-- How: walk the symbol's current rows back from the earlier of at and known_at (one index scan)
-- and take, for each bar, the current version or the revision valid at known_at, until one
-- qualifies: a row the store knew at known_at is complete only if its bar closed before then.
-- No walk for a pair the store knew nothing of yet: before the first known_from of any version of
-- the symbol nothing can qualify (typically every moment before a backfill); the walk used to
-- cross the whole history for such pairs (23 pairs/s on 50 symbols x 1 year of compressed hourly
-- rows), the first moment is now looked up once per distinct symbol of the request.
-- A revision's base columns are rebuilt through json (row_to_json), not jsonb: jsonb stores
-- numbers as numeric, which has no negative zero, so a stored -0.0 came back as 0.0; json keeps
-- float8's text, which round-trips exactly at extra_float_digits >= 1 (set on the functions, so a
-- client's lower setting cannot round the values). A row written without closes_at (a
-- hand-written INSERT) is judged with bar_closes_at(), like every other row.
-- A bar whose rows were all deleted is not on the walk (nothing in the store deletes bars;
-- retention drops whole chunks with their revisions).
--
-- name: the function; rows/revisions: its tables; known: when a version became known;
-- fetched: when the bar itself was fetched (complete when fetched at or after its close).
-- mfs:twin name=features_asof rows=features revisions=features_revisions known=computed_at fetched=bar_ingested_at
-- mfs:twin name=bars_asof rows=market_data revisions=market_data_revisions known=ingested_at fetched=ingested_at

CREATE OR REPLACE FUNCTION {{name}}(symbols text[], at timestamptz[], known_at timestamptz DEFAULT NULL,
                                    bar_interval text DEFAULT '1h', tolerance interval DEFAULT NULL,
                                    mode text DEFAULT 'known')
RETURNS SETOF {{name}}_row
LANGUAGE plpgsql STABLE
SET extra_float_digits = 1
AS $$
DECLARE
    served boolean := mode = 'served';
BEGIN
    PERFORM asof_check_arguments(symbols, at, bar_interval, tolerance, mode);
    RETURN QUERY
    SELECT e.i, e.at, q.k, v.*
    FROM unnest(symbols, at) WITH ORDINALITY AS e(symbol, at, i)
    CROSS JOIN LATERAL (SELECT CASE WHEN served THEN e.at ELSE coalesce(known_at, e.at) END AS k) q
    JOIN (SELECT u.symbol, least((SELECT min(x.{{known}}) FROM {{rows}} x
                                  WHERE x.symbol = u.symbol AND x.interval = bar_interval),
                                 (SELECT min(r.{{known}}) FROM {{revisions}} r
                                  WHERE r.symbol = u.symbol AND r.interval = bar_interval)) AS first_known
          FROM (SELECT DISTINCT s AS symbol FROM unnest(symbols) AS s) u) fk ON fk.symbol = e.symbol
    CROSS JOIN LATERAL (
        SELECT c.*
        FROM {{rows}} t
        CROSS JOIN LATERAL (
            (SELECT t.{{known}}, t.{{fetched}} >= coalesce(t.closes_at, bar_closes_at(t.interval, t.ts)),
                    'infinity'::timestamptz, NULL::text, NULL::text, t.*
             WHERE t.{{known}} <= q.k AND (served OR t.{{fetched}} >= coalesce(t.closes_at, bar_closes_at(t.interval, t.ts))))
            UNION ALL
            (SELECT r.{{known}}, r.{{fetched}} >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)),
                    'infinity'::timestamptz, NULL::text, NULL::text, b.*
             FROM {{revisions}} r
             CROSS JOIN LATERAL json_populate_record(NULL::{{rows}}, row_to_json(r)) b
             WHERE r.symbol = t.symbol AND r.interval = t.interval AND r.ts = t.ts
               AND r.{{known}} <= q.k AND q.k < r.known_to
               AND (served OR r.{{fetched}} >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)))
             LIMIT 1)
            LIMIT 1) c
        WHERE q.k >= fk.first_known
          AND t.symbol = e.symbol AND t.interval = bar_interval AND t.ts <= least(e.at, q.k)
          AND (served OR coalesce(t.closes_at, bar_closes_at(t.interval, t.ts)) <= e.at)
          AND (tolerance IS NULL OR (coalesce(t.closes_at, bar_closes_at(t.interval, t.ts)) >= e.at - tolerance
                                     AND t.ts >= e.at - tolerance - interval '1 day'))
        ORDER BY t.ts DESC
        LIMIT 1) v;
END $$;
COMMENT ON FUNCTION {{name}}(text[], timestamptz[], timestamptz, text, interval, text) IS
    'Per (symbols[i], at[i]): the newest row of {{rows}} whose bar closed by at, as known at known_at (default at); mode served: the newest row stored at at';
