-- The Apache edition has no compression and no policies: `mfs aggregates retention` drops the
-- revision tables' old chunks with the bars' (mfs.aggregates.retention).
SELECT 'revisions are dropped by mfs aggregates retention' AS note;
