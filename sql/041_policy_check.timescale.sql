-- Whether the refresh, compression and retention policies already are what mfs_apply_policies
-- would set for these values; `mfs db up` then leaves them (and their run history and
-- schedule) alone instead of re-creating them on every start.
-- mfs_policies_match is defined in sql/functions/mfs_policies_match.timescale.sql (a repeatable
-- file, applied after the numbered migrations).
SELECT 'mfs_policies_match: sql/functions/mfs_policies_match.timescale.sql' AS note;
