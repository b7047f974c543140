-- Nothing to change on the Apache edition: the writer refreshes the trigger-maintained rollups
-- with the table privileges 034_roles.sql granted it. (The community-license variant hands the
-- continuous aggregates to a group role the writer belongs to: only an owner may refresh them.)
SELECT 'the rollup tables are written with table privileges' AS note;
