-- Who may refresh the continuous aggregates. TimescaleDB lets only the owner of a continuous
-- aggregate refresh it (refresh_continuous_aggregate: "must be owner of view ohlcv_1d"), and the
-- pipelines run as mfs_writer, whose every run ends with a refresh that covers late data below the
-- watermark. So the three aggregates belong to a group role, mfs_aggregate_owner, which reads
-- exactly their sources, and mfs_writer is a member of it. The migrating role joins it too:
-- changing an owner needs membership of the new owner.
-- TimescaleDB runs an aggregate's policy jobs as its owner and refuses an owner that may not log
-- in ("permission denied to start background process"), so the role has LOGIN but no password:
-- with password authentication (the local cluster: scram-sha-256 only) nobody can log in as it.
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mfs_aggregate_owner') THEN
        BEGIN
            CREATE ROLE mfs_aggregate_owner LOGIN PASSWORD NULL;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another session created it meanwhile
        END;
    END IF;
END $$;
ALTER ROLE mfs_aggregate_owner LOGIN PASSWORD NULL;

GRANT mfs_aggregate_owner TO mfs_writer;
DO $$ BEGIN
    IF NOT pg_has_role(current_user, 'mfs_aggregate_owner', 'MEMBER') THEN
        EXECUTE format('GRANT mfs_aggregate_owner TO %I', current_user);
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO mfs_aggregate_owner;
GRANT SELECT ON market_data, features TO mfs_aggregate_owner;

ALTER MATERIALIZED VIEW ohlcv_1d OWNER TO mfs_aggregate_owner;
ALTER MATERIALIZED VIEW ohlcv_1w OWNER TO mfs_aggregate_owner;
ALTER MATERIALIZED VIEW features_1d OWNER TO mfs_aggregate_owner;
-- The reader keeps its SELECT (granted by 034): privileges survive a change of owner.

-- TimescaleDB copies an aggregate's grants to its internal materialization hypertable, so the
-- reader's SELECT on the public views (034) reached _timescaledb_internal too. The reader reads
-- the views only (a view reads its tables with its owner's rights).
DO $$
DECLARE
    internal text;
BEGIN
    FOR internal IN SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
                    FROM timescaledb_information.continuous_aggregates
                    WHERE view_name IN ('ohlcv_1d', 'ohlcv_1w', 'features_1d') LOOP
        EXECUTE format('REVOKE ALL ON %s FROM mfs_reader', internal);
    END LOOP;
END $$;
