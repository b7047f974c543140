"""Helpers for the feature tests: random-walk OHLCV on real NYSE bar labels, written to the real
market_data with the project's own bulk upsert, and feature rows read back."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs import calendar
from mfs.features.definitions import load
from mfs.ingest.write import MARKET_DATA_COLUMNS
from mfs.paths import project_root
from mfs.storage.bulk import upsert

# The shipped feature set (config/features.yaml as in the repository): what the docs describe and the
# golden values pin. Loaded here, by the tests, never by the package when imported.
BUILTIN_SET = load(project_root() / "config" / "features.yaml")
FEATURES = BUILTIN_SET.columns
FEATURE_NAMES = BUILTIN_SET.names
BY_NAME = BUILTIN_SET.by_name()
BUILTIN_DEFINITIONS = BUILTIN_SET.definitions

# The columns of market_data these helpers write (the rest take their defaults).
BAR_COLUMNS = [c for c in MARKET_DATA_COLUMNS if c.name != "adj_close"]


def bar_labels(n: int, interval: str = "1h", start: str = "2023-01-03") -> pd.DatetimeIndex:
    """``n`` consecutive bar labels (UTC) of ``interval`` from ``start`` on the NYSE calendar."""
    days = int(n / (7 if interval == "1h" else 1) * 1.6) + 10
    end = pd.Timestamp(start) + pd.Timedelta(days=days)
    if interval == "1h":
        labels = calendar.hourly_bar_starts(start, end.strftime("%Y-%m-%d"))
    else:
        labels = pd.DatetimeIndex(
            [calendar.daily_bar_label(d) for d in calendar.sessions(start, end.strftime("%Y-%m-%d"))]
        )
    assert len(labels) >= n, (len(labels), n)
    return labels[:n]


def make_bars(n: int, seed: int = 0, interval: str = "1h", start: str = "2023-01-03") -> pd.DataFrame:
    """A random walk with valid OHLC ranges, integer volumes and some unchanged closes."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close = np.round(close, 2)  # cent prices: unchanged closes and typical-price ties do happen
    open_ = np.round(np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.002, n)), 2)
    high = np.maximum(open_, close) + np.round(np.abs(rng.normal(0, 0.2, n)), 2)
    low = np.maximum(np.minimum(open_, close) - np.round(np.abs(rng.normal(0, 0.2, n)), 2), 0.01)
    volume = rng.integers(1_000, 1_000_000, n)
    return pd.DataFrame(
        {
            "ts": bar_labels(n, interval, start),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def insert_bars(conn, symbol: str, interval: str, bars: pd.DataFrame) -> None:
    n = len(bars)
    data = {
        "symbol": [symbol] * n,
        "interval": [interval] * n,
        "ts": pd.DatetimeIndex(bars["ts"]),
        "open": bars["open"].to_numpy(),
        "high": bars["high"].to_numpy(),
        "low": bars["low"].to_numpy(),
        "close": bars["close"].to_numpy(),
        "volume": bars["volume"].to_numpy(),
        "source": ["test"] * n,
        "closes_at": calendar.bar_closes(interval, pd.DatetimeIndex(bars["ts"])),
    }
    with conn.cursor() as cur:
        upsert(cur, "market_data", BAR_COLUMNS, data, key=["symbol", "interval", "ts"], touch={"ingested_at": "now()"})
    conn.commit()


def read_features(conn, symbol: str, interval: str = "1h") -> pd.DataFrame:
    cols = ", ".join(FEATURE_NAMES)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT ts, feature_version, computed_at, bar_ingested_at, {cols} FROM features "
            "WHERE symbol = %s AND interval = %s ORDER BY ts",
            (symbol, interval),
        )
        rows = cur.fetchall()
        names = [d[0] for d in cur.description]
    df = pd.DataFrame(rows, columns=names)
    for name in FEATURE_NAMES:
        df[name] = df[name].astype(np.float64)  # NULL -> NaN
    return df
