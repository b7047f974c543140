-- What the dashboard (`mfs dashboard`, connected as mfs_reader) shows beside the serving
-- relations: the run history, shell runs included (pipeline_runs stays internal: its per-symbol
-- detail in symbol_runs is not exposed), and which bars were quarantined and why (not their raw
-- values, which stay in the internal quarantine table).
CREATE VIEW pipeline_history AS
SELECT run_id, flow, parameters, started_at, finished_at, status, counts, error_summary
FROM pipeline_runs;
COMMENT ON VIEW pipeline_history IS 'Every pipeline run (Prefect or shell): flow, parameters, times, status, counts, error';

CREATE VIEW quarantined_bars AS
SELECT symbol, interval, ts, reason, at AS quarantined_at, run_id
FROM quarantine;
COMMENT ON VIEW quarantined_bars IS 'Bars refused at ingest: symbol, interval, label, reason, when (raw values withheld)';

GRANT SELECT ON pipeline_history, quarantined_bars TO mfs_reader;
