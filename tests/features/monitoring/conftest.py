"""The hourly-run store of hourly_store.py, built once per module."""

from __future__ import annotations

import pytest

from tests.features.monitoring.hourly_store import build_hourly_store


@pytest.fixture(scope="module")
def hourly_store(db_url: str, _yfinance_cache_dir) -> str:
    """The store's URL (its tables emptied first; the next test's `db` fixture empties them again)."""
    build_hourly_store(db_url)
    return db_url
