-- What the dashboard (`mfs dashboard`, connected as mfs_reader) shows of the bars refused at
-- ingest and why — not their raw values, which stay in the internal quarantine table.
CREATE VIEW quarantined_bars AS
SELECT symbol, interval, ts, reason, at AS quarantined_at, run_id
FROM quarantine;
COMMENT ON VIEW quarantined_bars IS 'Bars refused at ingest: symbol, interval, label, reason, when (raw values withheld)';
GRANT SELECT ON quarantined_bars TO mfs_reader;
