-- ohlcv_1d and ohlcv_1w say which New York session (week) a row is and whether it is final:
-- session_date / week_start (the New York date; `day` / `week` stay the New York midnight as a
-- timestamptz) and partial (sql/101's rule; a week while any of its sessions is), appended after
-- the existing columns so `SELECT *` readers keep their positions. The rollups store nothing new:
-- partial depends on the clock, and a refetch that changes no price changes it. Same columns as
-- the community license (102 .timescale). The views are
-- sql/views/ohlcv_1d.apache.sql and ohlcv_1w.apache.sql (repeatable files, applied after the
-- numbered migrations).
SELECT 'ohlcv_1d, ohlcv_1w: sql/views/' AS note;
