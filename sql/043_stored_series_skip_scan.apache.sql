-- Nothing on the Apache edition: it has neither compression nor SkipScan (a TSL feature), and
-- the loose index scan of 033 is fast on uncompressed chunks. (The community-license variant
-- replaces stored_series with a DISTINCT that SkipScan answers, compressed chunks included.)
SELECT 'stored_series keeps its loose index scan' AS note;
