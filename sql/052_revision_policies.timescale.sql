-- Revisions are compressed and dropped like the bars and feature rows they revise: segments per
-- series, newest bar first, so a bar's versions sit together.
ALTER TABLE market_data_revisions SET (timescaledb.compress,
                                       timescaledb.compress_segmentby = 'symbol, interval',
                                       timescaledb.compress_orderby = 'ts DESC, known_to');
ALTER TABLE features_revisions SET (timescaledb.compress,
                                    timescaledb.compress_segmentby = 'symbol, interval',
                                    timescaledb.compress_orderby = 'ts DESC, known_to');

-- The revision tables join the compression and retention policies (mfs_apply_policies, in
-- sql/functions/: mfs db up re-applies the policies because they no longer match).
