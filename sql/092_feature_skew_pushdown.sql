-- feature_skew_rows as in 090, written so that a filter on ts reaches the tables: in 090 the
-- versions were a CTE read twice, which PostgreSQL materializes, so `WHERE ts > now() - '7 days'`
-- (what `mfs status` asks) read every partial bar ever served. Here the versions are a UNION ALL
-- subquery (the filter is pushed into each branch: chunk exclusion on both hypertables) and each
-- version's first complete version is found by index probes on the bar's key. Same columns.
CREATE OR REPLACE VIEW feature_skew_rows AS
SELECT v.symbol, v.interval, v.ts, NOT v.complete AS partial, v.known_from AS served_from,
       least(v.known_to, fin.known_from) AS served_to, fin.known_from AS final_from,
       c.name AS feature, (v.row_values ->> c.name)::float8 AS served, (fin.row_values ->> c.name)::float8 AS final,
       (v.row_values ->> c.name)::float8 - (fin.row_values ->> c.name)::float8 AS diff
FROM (
    SELECT f.symbol, f.interval, f.ts, f.computed_at AS known_from, 'infinity'::timestamptz AS known_to,
           f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
           to_jsonb(f) AS row_values
    FROM features f
    WHERE EXISTS (SELECT 1 FROM features_revisions p
                  WHERE p.symbol = f.symbol AND p.interval = f.interval AND p.ts = f.ts
                    AND p.bar_ingested_at < coalesce(p.closes_at, bar_closes_at(p.interval, p.ts)))
    UNION ALL
    SELECT r.symbol, r.interval, r.ts, r.computed_at, r.known_to,
           r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)),
           to_jsonb(r) - 'known_to' - 'reason' - 'run_id'
    FROM features_revisions r
    WHERE EXISTS (SELECT 1 FROM features_revisions p
                  WHERE p.symbol = r.symbol AND p.interval = r.interval AND p.ts = r.ts
                    AND p.bar_ingested_at < coalesce(p.closes_at, bar_closes_at(p.interval, p.ts)))
) v
CROSS JOIN LATERAL (
    SELECT x.known_from, x.row_values
    FROM (SELECT f.computed_at AS known_from, to_jsonb(f) AS row_values
          FROM features f
          WHERE f.symbol = v.symbol AND f.interval = v.interval AND f.ts = v.ts
            AND f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts))
          UNION ALL
          SELECT r.computed_at, to_jsonb(r) - 'known_to' - 'reason' - 'run_id'
          FROM features_revisions r
          WHERE r.symbol = v.symbol AND r.interval = v.interval AND r.ts = v.ts
            AND r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts))) x
    ORDER BY x.known_from
    LIMIT 1
) fin
CROSS JOIN mfs_feature_columns() c
WHERE v.known_from <= fin.known_from AND (NOT v.complete OR v.known_from = fin.known_from);
COMMENT ON VIEW feature_skew_rows IS
    'Per bar once served partial, feature and served version: the value served and the first complete value';
