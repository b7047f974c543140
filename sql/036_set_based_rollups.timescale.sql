-- Nothing to change on the community license: 036_set_based_rollups.apache.sql reworks the
-- Apache-edition rollups, which this edition replaces with continuous aggregates.
SELECT 'continuous aggregates maintain their own invalidations' AS note;
