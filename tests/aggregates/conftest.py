"""Fixtures of the aggregate tests; their helpers (synthetic bars and features through the real write
path, from-scratch reference queries) live in aggregate_helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mfs.storage import migrations
from mfs.storage.connection import connect
from tests.aggregates.aggregate_helpers import REFERENCE, features_reference, query

# Internal state of the Apache-edition aggregates, emptied with the raw data before each test.
APACHE_STATE = ("aggregate_invalidations", "ohlcv_1d_rollup", "ohlcv_1w_rollup", "features_1d_rollup")


@pytest.fixture(scope="session")
def edition(db_url: str) -> str:
    conn = connect(db_url)
    try:
        return migrations.edition(conn)
    finally:
        conn.close()


@pytest.fixture
def agg_db(db: str, edition: str) -> Iterator[str]:
    """The emptied session database, including the aggregates' own state."""
    if edition == "apache":
        conn = connect(db)
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(APACHE_STATE)}")
        conn.commit()
        conn.close()
    else:  # TRUNCATE invalidated the continuous aggregates: drop what an earlier test materialized
        from mfs.aggregates import refresh

        refresh(url=db)
    yield db


@pytest.fixture
def assert_aggregates_match() -> Callable[[str], None]:
    def check(url: str) -> None:
        for name, reference in REFERENCE.items():
            key = "day" if name == "ohlcv_1d" else "week"
            got = query(url, f"SELECT * FROM {name} ORDER BY symbol, {key}")
            want = query(url, reference)
            assert got == want, f"{name} differs from GROUP BY over market_data"
        got = query(url, "SELECT * FROM features_1d ORDER BY symbol, day")
        assert got == query(url, features_reference(url)), "features_1d differs from GROUP BY over features"

    return check
