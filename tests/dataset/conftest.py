"""The point-in-time store of tests/dataset/store.py, built once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dataset.store import Store, build_store


@pytest.fixture(scope="module")
def pit_store(db_url: str, _yfinance_cache_dir) -> Iterator[Store]:
    """The store (its tables emptied first; the next test's `db` fixture empties them again)."""
    yield build_store(db_url)
