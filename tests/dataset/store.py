"""A store filled by real runs on a pinned clock (tests/dataset and tests/cli build it once per module).

The hourly schedule of a live deployment (collect at :00, features at :05) on chosen days: the
Friday before the end of DST (2026-10-30) and the Monday after it (2026-11-02, the 09:30 bar is
14:30 UTC instead of 13:30), the day before Thanksgiving (2026-11-25), the half day after it
(2026-11-27, closes 13:00), and a last day (2026-11-30) on which AAPL has split 4-for-1: Yahoo
re-adjusts its whole history, so every stored AAPL row gets a revision. Runs during a session
fetch the bar in progress as a partial bar, completed by the next run: partial and complete
versions of the same ts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from mfs.features.run import compute
from mfs.ingest.run import collect
from mfs.market import NY
from mfs.storage.connection import connect
from tests.fixtures.config import config_environment
from tests.fixtures.database import DATA_TABLES

SYMBOLS = ["AAPL", "MSFT", "KO"]
SPLIT = {"AAPL": "split:2026-11-30:4"}
# (New York day, collect hours); features follow each collect five minutes later.
SCHEDULE = [
    ("2026-10-30", [10, 11, 12, 16]),
    ("2026-11-02", [10, 11, 13]),
    ("2026-11-25", [15, 16]),
    ("2026-11-27", [10, 12, 13]),
]
SPLIT_DAY = ("2026-11-30", [10, 11])
FEATURES_LAG = pd.Timedelta(minutes=5)


@dataclass
class Store:
    url: str
    symbols: list[str]
    moments: list[pd.Timestamp] = field(default_factory=list)  # every collect and features moment (UTC)
    split_at: pd.Timestamp | None = None  # the first collect after the split


def ny(day: str, hour: int, minute: int = 0) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hour:02d}:{minute:02d}", tz=NY).tz_convert("UTC")


def empty_store(url: str) -> None:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(DATA_TABLES)} CASCADE")
        conn.commit()
    finally:
        conn.close()


def _pinned_run(t: pd.Timestamp, symbols: list[str], session_factory, faults: dict, *, days: int | None) -> None:
    os.environ["MFS_CLOCK"] = t.isoformat()
    collect(symbols, None, days=days, session=session_factory(asof=t, faults=faults), raise_on_failure=True)
    os.environ["MFS_CLOCK"] = (t + FEATURES_LAG).isoformat()
    compute(symbols, None, raise_on_failure=True)


@contextmanager
def pinned_runs() -> Iterator[None]:
    """A block of runs at pinned store clocks (``_pinned_run``) with fast retries; MFS_CLOCK and
    the Yahoo request cache are as before it, after it."""
    from mfs.sources.yahoo import clear_request_cache

    old_clock = os.environ.get("MFS_CLOCK")
    with config_environment(MFS_INGEST__BACKOFF_INITIAL_S="0.001", MFS_INGEST__BACKOFF_MAX_S="0.005"):
        try:
            yield
        finally:
            clear_request_cache()
            if old_clock is None:
                os.environ.pop("MFS_CLOCK", None)
            else:
                os.environ["MFS_CLOCK"] = old_clock


def build_store(url: str, schedule=SCHEDULE, split_day=SPLIT_DAY, symbols=SYMBOLS, first_days: int = 20) -> Store:
    from mfs.sources.fake_yahoo import synthetic_session
    from mfs.sources.yahoo import clear_request_cache

    empty_store(url)
    store = Store(url, list(symbols))
    with pinned_runs():
        days: int | None = first_days
        for day, hours in schedule:
            for hour in hours:
                clear_request_cache()
                t = ny(day, hour)
                _pinned_run(t, store.symbols, synthetic_session, {}, days=days)
                store.moments += [t, t + FEATURES_LAG]
                days = None
        if split_day:
            day, hours = split_day
            for hour in hours:
                clear_request_cache()
                t = ny(day, hour)
                store.split_at = store.split_at or t
                _pinned_run(t, store.symbols, synthetic_session, dict(SPLIT), days=None)
                store.moments += [t, t + FEATURES_LAG]
    return store
