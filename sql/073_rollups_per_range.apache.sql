-- Daily and weekly rollups aggregated range by range (one index probe and one small grouping per
-- pending range) instead of one grouping of every joined bar: for the first refresh of 8,000
-- symbols × 60 days of hourly bars the planner guessed 40,000 groups for 328,000 and its hash
-- aggregate spilled 250 MB to disk, so that step grew faster than the store (2,000 → 8,000
-- symbols: 0.82 → 4.4 s). Per range: 3.0 → 2.3 s at 8,000, the same rows. Ranges are whole
-- New York days (weeks), merged so they never overlap: every bucket lies in exactly one.
-- The views are sql/views/ohlcv_1d_live.apache.sql and ohlcv_1w_live.apache.sql (repeatable files,
-- applied after the numbered migrations).
SELECT 'ohlcv_1d_live, ohlcv_1w_live: sql/views/' AS note;
