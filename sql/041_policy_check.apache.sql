-- Nothing on the Apache edition: it has no TimescaleDB policies (the pipeline refreshes the
-- rollups and applies retention itself).
SELECT 'no policies on the Apache edition' AS note;
