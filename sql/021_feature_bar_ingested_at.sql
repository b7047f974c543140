-- Which version of its bar a feature row was computed from: the bar's market_data.ingested_at as
-- the feature run read it. An incremental run recomputes from the earliest bar whose ingested_at
-- differs (the partial last bar that ingest overwrote, a late correction) or that has no feature
-- row of the current feature_version. Comparing to the value read (not to computed_at) is exact
-- even when an ingest transaction that started earlier commits after the feature run read.
ALTER TABLE features ADD COLUMN bar_ingested_at timestamptz;
