-- Roles: mfs_writer for the pipelines, mfs_reader for downstream SQL users. Created NOLOGIN and
-- without a password: passwords come only from the environment (MFS_WRITER_PASSWORD,
-- MFS_READER_PASSWORD), set by mfs.aggregates.sync_role_passwords() after migrating.
-- Roles belong to the whole server (several databases, parallel test sessions): create them
-- once, tolerating a concurrent creator.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['mfs_writer', 'mfs_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another session created it meanwhile
            END;
        END IF;
    END LOOP;
END $$;

-- Temporary tables only for roles that write (the upsert stages rows in one); a reader cannot
-- create anything anywhere (PostgreSQL 15 already denies CREATE on schema public to PUBLIC).
DO $$ BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO mfs_writer', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO mfs_reader', current_database());
END $$;

GRANT USAGE ON SCHEMA public TO mfs_writer, mfs_reader;

-- The writer reads and writes every table (bars, features, runs, quarantine, rollups, the
-- invalidation log) and their sequences.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mfs_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mfs_writer;

-- The reader: the serving relations only. Views read their base tables with their owner's
-- rights, so the aggregates work without granting the rollup tables or the invalidation log.
-- Not granted: quarantine, pipeline_runs, symbol_runs, schema_migrations, the rollup tables,
-- aggregate_invalidations and the *_live / pending helper views.
GRANT SELECT ON market_data, features, symbols, market_sessions,
                ohlcv_1d, ohlcv_1w, features_1d,
                latest_features, data_freshness, missing_sessions, stored_series, expected_bars
    TO mfs_reader;

-- Objects created later by the migrating role (new serving views, aggregates, hypertables) stay
-- readable and writable without another grant. A later migration that adds an internal table
-- must `REVOKE SELECT ON <table> FROM mfs_reader` (tests/aggregates/test_roles.py lists exactly
-- what the reader may see and fails on anything else).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO mfs_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mfs_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO mfs_writer;

-- Functions are executable by PUBLIC by default; the policy function is for the owner only.
DO $$ BEGIN
    IF to_regprocedure('mfs_apply_policies(integer, integer)') IS NOT NULL THEN
        REVOKE EXECUTE ON FUNCTION mfs_apply_policies(integer, integer) FROM PUBLIC;
    END IF;
END $$;
