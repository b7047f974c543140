-- The feature registry: which feature columns the store has, the definition each was computed
-- from, and when it was added, superseded, retired, filled and pruned. Written by
-- mfs.features.registry from config/features.yaml; a feature's column (in features and
-- features_revisions) is added by generated DDL, recorded in feature_schema_changes.
CREATE TABLE feature_registry (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    version       text NOT NULL,          -- hash of the normalised definition and its inputs' versions
    definition    jsonb NOT NULL,         -- the normalised definition (TA-Lib call or expression)
    description   text NOT NULL DEFAULT '',
    warmup        integer NOT NULL,       -- leading bars of a symbol's history that are NULL
    depends_on    text[] NOT NULL DEFAULT '{}',
    added_at      timestamptz NOT NULL,   -- when this version was registered
    filled_at     timestamptz,            -- when its column was last computed over the whole history
    superseded_at timestamptz,            -- when a changed definition replaced this version
    retired_at    timestamptz,            -- when the feature was removed from the definitions
    pruned_at     timestamptz             -- when its column was dropped (mfs features prune)
);
-- One registered version per feature that is neither superseded nor pruned (active or retired).
CREATE UNIQUE INDEX feature_registry_live ON feature_registry (name)
    WHERE superseded_at IS NULL AND pruned_at IS NULL;
COMMENT ON TABLE feature_registry IS
    'Every version of every feature column: definition, version, added/filled/superseded/retired/pruned';

-- The DDL the registry generated, recorded like an applied migration.
CREATE TABLE feature_schema_changes (
    id         bigserial PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    change     text NOT NULL,             -- what caused it: "add rsi_7", "prune kama_30", …
    checksum   text NOT NULL,             -- SHA-256 of the statements
    statements text NOT NULL
);
COMMENT ON TABLE feature_schema_changes IS 'The DDL generated from the feature registry, in order';
-- The reader may read the registry (what each column holds, since when); the DDL log is the
-- owner's, like schema_migrations.
REVOKE SELECT ON feature_schema_changes FROM mfs_reader;

-- The feature columns of the features table, in column order: every column but the key and the
-- row's metadata.
CREATE FUNCTION mfs_feature_columns() RETURNS TABLE (name text, sql_type text)
LANGUAGE sql STABLE AS $$
    SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a
    WHERE a.attrelid = 'features'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('symbol', 'interval', 'ts', 'feature_version', 'computed_at', 'bar_ingested_at',
                            'closes_at')
    ORDER BY a.attnum
$$;

-- The views that carry every feature column, generated from the table's columns: the only
-- definition of each from now on. Run after every change of the feature columns. CREATE OR
-- REPLACE appends a new column; after a column was dropped (the views with it) they are created.
-- features_1d is the row of each New York day's last hourly bar, found through features_1d_last
-- (a continuous aggregate or trigger rollup of (symbol, day, last_ts)), so adding a feature
-- rematerializes nothing.
CREATE FUNCTION mfs_rebuild_feature_views() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(format('f.%I', name), ', ') INTO cols FROM mfs_feature_columns();
    EXECUTE $v$CREATE OR REPLACE VIEW latest_features AS
        SELECT f.* FROM stored_series s
        CROSS JOIN LATERAL (SELECT * FROM features f WHERE f.symbol = s.symbol AND f.interval = s.interval
                            ORDER BY f.ts DESC LIMIT 1) f$v$;
    COMMENT ON VIEW latest_features IS 'Newest feature row per symbol and interval';
    EXECUTE $v$CREATE OR REPLACE VIEW feature_versions AS
        SELECT f.computed_at AS known_from,
               f.bar_ingested_at >= coalesce(f.closes_at, bar_closes_at(f.interval, f.ts)) AS complete,
               'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, f.*
        FROM features f
        UNION ALL
        SELECT r.computed_at, r.bar_ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)), r.*
        FROM features_revisions r$v$;
    COMMENT ON VIEW feature_versions IS
        'Every version of every feature row: known_from, complete, known_to, reason, run_id';
    EXECUTE $v$CREATE OR REPLACE VIEW features_asof_row AS
        SELECT NULL::bigint AS entity, NULL::timestamptz AS at, NULL::timestamptz AS known_at, v.*
        FROM feature_versions v WHERE false$v$;
    COMMENT ON VIEW features_asof_row IS 'The row type of features_asof (always empty)';
    EXECUTE format($v$CREATE OR REPLACE VIEW features_1d AS
        SELECT d.symbol, d.day, d.last_ts, f.feature_version, %s
        FROM features_1d_last d
        JOIN features f ON f.symbol = d.symbol AND f.interval = '1h' AND f.ts = d.last_ts$v$, cols);
    COMMENT ON VIEW features_1d IS 'Per symbol and New York day, the last hourly value of every feature; always current';
END $$;
REVOKE EXECUTE ON FUNCTION mfs_rebuild_feature_views() FROM PUBLIC;
