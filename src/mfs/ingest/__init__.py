"""Ingestion: Yahoo bars validated, quarantined when bad, upserted into ``market_data``."""

from mfs.ingest.pipeline import backfill, collect

__all__ = ["backfill", "collect"]
