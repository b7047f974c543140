-- features_asof / bars_asof: no walk for a pair the store knew nothing of yet. Before the first
-- known_from of any version of the symbol (current rows and revisions) nothing can qualify —
-- typically every moment before a backfill. The walk used to cross the whole history
-- for such pairs (23 pairs/s on 50 symbols x 1 year of compressed hourly rows); the first moment
-- is looked up once per distinct symbol of the request.
--
-- Both functions are defined in sql/functions/asof.sql (a repeatable file, applied after the
-- numbered migrations); this migration's step is recorded, and runs nothing.
SELECT 'features_asof and bars_asof: sql/functions/asof.sql' AS note;
