-- Fixes of 050/051 found by the point-in-time tests.
--
-- 1. An "as of" answer reports the version as it stood then: a version valid at known_at was the
--    current one at that moment, so its known_to is 'infinity' and it has no reason or run of
--    replacement yet. Returning the revision's known_to/reason/run_id leaked what happened after
--    known_at and broke byte-identical reproduction of a past result.
-- 2. latest_features was created with `f.*`, expanded when 033 ran: it lacked closes_at.
-- 3. A row written without closes_at (a hand-written INSERT) is read with bar_closes_at(), so it
--    is judged complete or not like every other row (the writers always store it).

CREATE OR REPLACE VIEW bar_versions AS
SELECT m.ingested_at AS known_from, m.ingested_at >= coalesce(m.closes_at, bar_closes_at(m.interval, m.ts)) AS complete,
       'infinity'::timestamptz AS known_to, NULL::text AS reason, NULL::text AS run_id, m.*
FROM market_data m
UNION ALL
SELECT r.ingested_at, r.ingested_at >= coalesce(r.closes_at, bar_closes_at(r.interval, r.ts)), r.*
FROM market_data_revisions r;

-- Fix 1 is in features_asof / bars_asof (sql/functions/asof.sql), fixes 2 and 3 for features in
-- the generated feature views (mfs_rebuild_feature_relations, sql/functions/): repeatable files,
-- applied after the numbered migrations. bar_versions stays here: bars_asof_row (051) reads it.
