-- Nothing to change on the community license: 073_rollups_per_range.apache.sql reworks the
-- Apache-edition rollups, which this edition replaces with continuous aggregates.
SELECT 'continuous aggregates group their own buckets' AS note;
