-- What the dashboard (`mfs dashboard`, connected as mfs_reader) shows beside the serving
-- relations: the run history, shell runs included (pipeline_runs stays internal: its per-symbol
-- detail in symbol_runs is not exposed), and which bars were quarantined and why (not their raw
-- values, which stay in the internal quarantine table).
-- Both are defined in sql/views/ (pipeline_history.sql, quarantined_bars.sql: repeatable files,
-- applied after the numbered migrations).
SELECT 'pipeline_history, quarantined_bars: sql/views/' AS note;
