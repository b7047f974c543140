"""Real recorded daily bars (bokeh_sampledata's public-domain Quandl WIKI prices, 2000–2013) as a
second offline Yahoo fixture: real price paths, real volumes, real split/dividend adjustment."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label
from mfs.market import NY

RECORDED_SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")


@lru_cache(maxsize=1)
def recorded_bars() -> pd.DataFrame:
    """All recorded daily bars: symbol, ts (daily_bar_label), open … adj_close, volume."""
    from bokeh_sampledata.stocks import data  # test-only dependency, imported when used

    frame = data[data["ticker"].isin(RECORDED_SYMBOLS)].copy()
    frame["ts"] = pd.DatetimeIndex([daily_bar_label(d) for d in pd.to_datetime(frame["date"])])
    frame["volume"] = frame["volume"].astype(np.int64)
    frame = frame.rename(columns={"ticker": "symbol"})
    return frame[["symbol", "ts", "open", "high", "low", "close", "adj_close", "volume"]].reset_index(drop=True)


def recorded_provider(symbol, interval, start, end, asof):
    if symbol not in RECORDED_SYMBOLS:
        return None
    bars = recorded_bars()
    if interval != "1d":
        return bars.iloc[0:0].drop(columns="symbol")
    day_start = start.tz_convert(NY).normalize().tz_convert("UTC")
    mask = (bars["symbol"] == symbol) & (bars["ts"] >= day_start) & (bars["ts"] < end) & (bars["ts"] <= asof)
    return bars.loc[mask].drop(columns="symbol").reset_index(drop=True)
