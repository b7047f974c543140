-- Feature monitoring: what the features look like after each run (feature_stats), whether their
-- distribution moved (feature_drift_checks / feature_drift), how far what was served on a partial
-- bar was from the complete value (feature_skew_rows / feature_skew), and whether the stored values
-- are what the current definitions compute from the stored bars (feature_audits).
-- Written by mfs.features.monitoring; docs/features.md says what each figure means, docs/sql.md
-- has a worked query per view.

-- One row per feature, interval and scope after each features run:
--   scope 'written'        the rows the run inserted or changed (computed_at >= the run's start);
--   scope 'cross_section'  the newest row of every symbol of the run (what latest_features serves).
-- null_fraction counts only rows beyond the feature's warm-up (its first `warmup` bars of a
-- symbol's history are NULL by definition); quantiles are continuous (percentile_cont).
CREATE TABLE feature_stats (
    computed_at   timestamptz NOT NULL DEFAULT mfs_now(),
    run_id        text,
    interval      text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('written', 'cross_section')),
    feature       text NOT NULL,
    version       text,                   -- feature_registry.version the values were computed with
    newest_ts     timestamptz,            -- newest bar among the rows
    symbols       integer NOT NULL,
    rows          bigint NOT NULL,        -- rows beyond the warm-up
    nulls         bigint NOT NULL,        -- of those, NULL (degenerate input: flat prices, no volume)
    null_fraction double precision,
    min           double precision,
    max           double precision,
    mean          double precision,
    std           double precision,       -- population standard deviation
    p01           double precision,
    p25           double precision,
    p50           double precision,
    p75           double precision,
    p99           double precision
);
SELECT create_hypertable('feature_stats', by_range('computed_at', INTERVAL '30 days'), create_default_indexes => false);
CREATE INDEX feature_stats_feature ON feature_stats (feature, interval, computed_at DESC);
CREATE INDEX feature_stats_run ON feature_stats (run_id);
COMMENT ON TABLE feature_stats IS
    'Per features run, feature and interval: count, NULL fraction beyond warm-up, min, max, mean, std, quantiles';

-- A drift check per session: each monitored feature's recent window (the last N complete
-- sessions) against its reference window (the M sessions before them), pooled over a symbol
-- group, as a population stability index (PSI) over the reference's decile bins. Only values
-- computed with the feature's current registered version are compared: a changed definition
-- starts a new reference (status 'restarting' until its column is filled).
CREATE TABLE feature_drift_checks (
    checked_at       timestamptz NOT NULL DEFAULT mfs_now(),
    run_id           text,
    interval         text NOT NULL,
    symbol_group     text NOT NULL,
    feature          text NOT NULL,
    version          text,
    recent_from      date NOT NULL,          -- New York sessions, inclusive
    recent_to        date NOT NULL,
    reference_from   date NOT NULL,
    reference_to     date NOT NULL,
    recent_values    bigint NOT NULL,
    reference_values bigint NOT NULL,
    psi              double precision,
    threshold        double precision NOT NULL,
    status           text NOT NULL CHECK (status IN ('ok', 'drift', 'too_few_values', 'restarting')),
    PRIMARY KEY (interval, symbol_group, feature, recent_to, checked_at)
);
CREATE INDEX feature_drift_checks_at ON feature_drift_checks (checked_at DESC);
COMMENT ON TABLE feature_drift_checks IS
    'Every drift check: PSI of a feature''s recent sessions against its reference sessions, per symbol group';

CREATE VIEW feature_drift AS
SELECT DISTINCT ON (interval, symbol_group, feature)
       interval, symbol_group, feature, version, status = 'drift' AS drifting, psi, threshold, status,
       recent_from, recent_to, reference_from, reference_to, recent_values, reference_values, checked_at
FROM feature_drift_checks
ORDER BY interval, symbol_group, feature, checked_at DESC, recent_to DESC;
COMMENT ON VIEW feature_drift IS
    'The newest drift check of every feature, interval and symbol group: drifting when its PSI is beyond the threshold';

-- Served vs final. For every bar that was served partial (a features_revisions row computed from
-- a bar fetched before its close), each version served up to and including the first complete
-- one, paired with that first complete version, value by value. Complete versions replaced later
-- (a split re-adjusting history, a correction, a new definition) are revisions, not skew: the
-- pairing stops at the first complete version. Generic over the feature columns (a row as jsonb),
-- so the registry adds and drops columns without touching these views.
CREATE VIEW feature_skew_rows AS
WITH partial_bars AS (
    SELECT DISTINCT r.symbol, r.interval, r.ts
    FROM features_revisions r
    WHERE r.bar_ingested_at < coalesce(r.closes_at, bar_closes_at(r.interval, r.ts))
), versions AS (
    SELECT f.symbol, f.interval, f.ts, f.computed_at AS known_from, 'infinity'::timestamptz AS known_to,
           f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
           to_jsonb(f) AS row_values
    FROM features f JOIN partial_bars p USING (symbol, interval, ts)
    UNION ALL
    SELECT r.symbol, r.interval, r.ts, r.computed_at, r.known_to,
           r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)),
           to_jsonb(r) - 'known_to' - 'reason' - 'run_id'
    FROM features_revisions r JOIN partial_bars p USING (symbol, interval, ts)
), final AS (
    SELECT DISTINCT ON (symbol, interval, ts) symbol, interval, ts, known_from, row_values
    FROM versions WHERE complete
    ORDER BY symbol, interval, ts, known_from
)
SELECT v.symbol, v.interval, v.ts, NOT v.complete AS partial, v.known_from AS served_from,
       least(v.known_to, fin.known_from) AS served_to, fin.known_from AS final_from,
       c.name AS feature, (v.row_values ->> c.name)::float8 AS served, (fin.row_values ->> c.name)::float8 AS final,
       (v.row_values ->> c.name)::float8 - (fin.row_values ->> c.name)::float8 AS diff
FROM versions v
JOIN final fin USING (symbol, interval, ts)
CROSS JOIN mfs_feature_columns() c
WHERE v.known_from <= fin.known_from AND (NOT v.complete OR v.known_from = fin.known_from);
COMMENT ON VIEW feature_skew_rows IS
    'Per bar once served partial, feature and served version: the value served and the first complete value';

CREATE VIEW feature_skew AS
SELECT interval, feature, partial,
       count(*) AS versions,
       count(*) FILTER (WHERE served IS NOT NULL AND final IS NOT NULL) AS compared,
       count(*) FILTER (WHERE (served IS NULL) <> (final IS NULL)) AS null_mismatches,
       count(*) FILTER (WHERE diff <> 0) AS differing,
       avg(abs(diff)) AS mean_abs_diff,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(diff)) AS p50_abs_diff,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY abs(diff)) AS p95_abs_diff,
       max(abs(diff)) AS max_abs_diff,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(diff) / nullif(abs(final), 0)) AS p50_rel_diff,
       max(abs(diff) / nullif(abs(final), 0)) AS max_rel_diff
FROM feature_skew_rows
GROUP BY interval, feature, partial;
COMMENT ON VIEW feature_skew IS
    'Per feature: how far values served on partial bars (partial) and on complete bars were from the complete value';

-- The self-audit: a sample of symbols recomputed from their stored bars with the current
-- definitions, every stored feature value compared.
CREATE TABLE feature_audits (
    id                bigserial PRIMARY KEY,
    run_id            text,
    started_at        timestamptz NOT NULL DEFAULT mfs_now(),
    seconds           double precision NOT NULL,
    symbols           text[] NOT NULL,       -- the sample
    intervals         text[] NOT NULL,
    columns           text[] NOT NULL,       -- the feature columns compared
    rows_compared     bigint NOT NULL,
    values_compared   bigint NOT NULL,
    tolerance         double precision NOT NULL,
    worst_rel_diff    double precision,      -- the largest difference found, relative (see docs/features.md)
    worst             jsonb,                 -- symbol, interval, feature, ts, stored, recomputed of it
    mismatching_rows  bigint NOT NULL,
    mismatches        jsonb NOT NULL DEFAULT '[]',  -- the first mismatching values, as `worst`
    passed            boolean NOT NULL
);
CREATE INDEX feature_audits_started ON feature_audits (started_at DESC);
COMMENT ON TABLE feature_audits IS
    'Self-audits: sampled symbols recomputed from stored bars and compared with every stored feature value';

GRANT SELECT ON feature_stats, feature_drift_checks, feature_drift, feature_skew_rows, feature_skew, feature_audits
    TO mfs_reader;
