"""Ingestion: Yahoo bars validated, quarantined when bad, upserted into ``market_data``: ``run``
(collect, backfill: a whole run), ``write`` (the write path), ``validate``, ``history``."""

from mfs.ingest.run import backfill, collect

__all__ = ["backfill", "collect"]
