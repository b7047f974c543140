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

-- The views that carry every feature column are generated from the table's columns by
-- mfs_rebuild_feature_views / mfs_rebuild_feature_relations (sql/functions/, repeatable files
-- applied after the numbered migrations): the only definition of each.
