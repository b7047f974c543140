-- feature_drift_counts (093) is internal: readers see the verdicts (feature_drift), not the counts.
REVOKE SELECT ON feature_drift_counts FROM mfs_reader;
