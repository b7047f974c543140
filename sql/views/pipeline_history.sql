-- What the dashboard (`mfs dashboard`, connected as mfs_reader) shows of the run history, shell
-- runs included (pipeline_runs stays internal: its per-symbol detail in symbol_runs is not exposed).
CREATE VIEW pipeline_history AS
SELECT run_id, flow, parameters, started_at, finished_at, status, counts, error_summary
FROM pipeline_runs;
COMMENT ON VIEW pipeline_history IS 'Every pipeline run (Prefect or shell): flow, parameters, times, status, counts, error';
GRANT SELECT ON pipeline_history TO mfs_reader;
