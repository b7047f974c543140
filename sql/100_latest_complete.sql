-- latest_features says whether each row is final: `complete` is false while the row's bar had not
-- closed when it was fetched (the current hour's bar, fetched at 13:35 for 13:30–14:30), and
-- `closes_at` (when the bar is over) stands beside `ts`. Partial rows are still served — a live
-- model wants the freshest value and to know it is partial; a user who wants final values only
-- filters `WHERE complete`. Same rule as feature_versions.complete (sql/050).
--
-- Columns: symbol, interval, ts, closes_at, complete, then the row's remaining columns in the
-- order of features (feature_version, computed_at, bar_ingested_at, every feature). Generated from
-- the feature columns like the other feature views, so a new feature is appended to the view.
-- The view is dropped here (its columns move; nothing else depends on it) and created again by
-- mfs_rebuild_feature_relations (sql/functions/, applied after the numbered migrations), which
-- grants it to mfs_reader.
DROP VIEW latest_features;

