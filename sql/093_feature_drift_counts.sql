-- Per-session histograms of the monitored features, kept for the drift check
-- (mfs.features.monitoring.session_counts): each complete session is counted once on a fixed
-- grid (bins 2 % wide relative to the value) instead of re-reading 65 sessions of every symbol's
-- feature rows at each check. Internal: readers see the verdicts (feature_drift).
CREATE TABLE feature_drift_counts (
    interval     text NOT NULL,
    symbol_group text NOT NULL,
    members      text NOT NULL,          -- '' for every symbol, else md5 of the group's sorted symbols
    feature      text NOT NULL,
    version      text NOT NULL,          -- feature_registry.version the counted values were computed with
    session      date NOT NULL,          -- New York session
    bins         bytea NOT NULL,         -- int32 little-endian grid bins with values, ascending
    counts       bytea NOT NULL,         -- int64 little-endian count of each
    counted_at   timestamptz NOT NULL DEFAULT mfs_now(),
    PRIMARY KEY (interval, symbol_group, members, feature, version, session)
);
COMMENT ON TABLE feature_drift_counts IS
    'Per session, symbol group and monitored feature: its values counted on the drift check''s fixed grid';
