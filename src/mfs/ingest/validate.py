"""Bar validation: every bar from the source is checked before it can reach ``market_data``.

A rejected bar is not dropped silently: it becomes a quarantine row (raw values, reason) and is
counted by reason in the run's summary; the good bars beside it are stored. Checks, in order
(a bar is quarantined for the first one it fails):

- ``duplicate_ts``    a second bar with the same timestamp in one response
- ``not_finite``      open/high/low/close/volume missing, NaN or infinite
- ``non_positive``    a price ≤ 0 (adj_close too, when present)
- ``range``           low ≤ open, close ≤ high violated
- ``bad_volume``      volume negative or not an integer
- ``outside_session`` an hourly bar that is not one of the NYSE session's bar starts (09:30 …
                      15:30 New York, per ``mfs.calendar``), a daily bar not labelled with a
                      session date
- ``absurd_jump``     the close moved more than ``ingest.max_jump`` (a fraction) from the
                      previous accepted close in the same response
"""

from __future__ import annotations

import math
from functools import lru_cache
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mfs.calendar import NY, hourly_bar_starts, sessions

PRICE_COLUMNS = ["open", "high", "low", "close"]


@dataclass
class Validated:
    good: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)  # {ts, raw, reason, code}

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(r["code"] for r in self.rejected))


def _raw(row: pd.Series) -> dict:
    """JSON-safe raw values: NaN/inf kept visible as strings (jsonb has no NaN)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, pd.Timestamp):
            out[key] = value.isoformat()
        elif isinstance(value, (float, np.floating)):
            out[key] = float(value) if math.isfinite(value) else str(value)
        elif isinstance(value, (np.integer,)):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _expected_labels(interval: str, ts: pd.Series) -> pd.DatetimeIndex:
    lo = ts.min().tz_convert(NY).normalize()
    hi = ts.max().tz_convert(NY).normalize()
    return _labels_between(interval, lo.value, hi.value)


@lru_cache(maxsize=64)
def _labels_between(interval: str, lo_ns: int, hi_ns: int) -> pd.DatetimeIndex:
    """Cached per day range: every symbol of a run asks for the same window."""
    lo, hi = pd.Timestamp(lo_ns, tz="UTC"), pd.Timestamp(hi_ns, tz="UTC")
    if interval == "1h":
        return hourly_bar_starts(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))
    days = sessions(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))
    # == daily_bar_label(day) for each session, vectorised
    return pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC")


def validate_bars(bars: pd.DataFrame, interval: str, *, max_jump: float) -> Validated:
    """Split ``bars`` (columns ts, open, high, low, close, adj_close, volume) into good bars and
    quarantine records. ``ts`` must be UTC; the good frame keeps the input's column order."""
    if bars.empty:
        return Validated(good=bars.copy())
    bars = bars.sort_values("ts", kind="stable").reset_index(drop=True)
    n = len(bars)
    code = np.array([""] * n, dtype=object)
    detail = np.array([""] * n, dtype=object)

    def flag(mask: np.ndarray, name: str, text) -> None:
        new = mask & (code == "")
        code[new] = name
        for i in np.flatnonzero(new):
            detail[i] = text(i)

    prices = bars[PRICE_COLUMNS].to_numpy(dtype=float)
    volume = pd.to_numeric(bars["volume"], errors="coerce").to_numpy(dtype=float)
    adj = bars["adj_close"].to_numpy(dtype=float)
    o, h, lo, c = prices.T

    flag(bars["ts"].duplicated().to_numpy(), "duplicate_ts", lambda i: "a bar with this timestamp came earlier in the response")
    flag(~np.isfinite(prices).all(axis=1) | ~np.isfinite(volume), "not_finite",
         lambda i: "missing or non-finite " + ", ".join(
             k for k, v in zip(PRICE_COLUMNS + ["volume"], list(prices[i]) + [volume[i]]) if not math.isfinite(v)))
    flag((prices <= 0).any(axis=1) | (np.isfinite(adj) & (adj <= 0)), "non_positive",
         lambda i: "price ≤ 0: " + ", ".join(f"{k}={v}" for k, v in zip(PRICE_COLUMNS + ["adj_close"], list(prices[i]) + [adj[i]]) if v <= 0))
    flag((lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (lo > h), "range",
         lambda i: f"low ≤ open, close ≤ high violated: open={o[i]} high={h[i]} low={lo[i]} close={c[i]}")
    flag((volume < 0) | (np.floor(volume) != volume), "bad_volume", lambda i: f"volume {volume[i]} is negative or not an integer")
    expected = _expected_labels(interval, bars["ts"])
    outside = ~pd.DatetimeIndex(bars["ts"]).isin(expected)
    what = "an NYSE hourly bar start (09:30…15:30 New York on a session)" if interval == "1h" else "an NYSE session date"
    flag(outside, "outside_session", lambda i: f"{bars['ts'].iloc[i].isoformat()} is not {what}")

    # Absurd jump: compared with the previous *accepted* close, so one bad bar does not also
    # condemn the good bar after it.
    clean = code == ""
    if clean.all() and not (np.abs(c[1:] / c[:-1] - 1) > max_jump).any():
        return Validated(good=_typed(bars))  # the common case, without the row loop below
    previous = None
    for i in range(n):
        if code[i]:
            continue
        if previous is not None and abs(c[i] / previous - 1) > max_jump:
            code[i] = "absurd_jump"
            detail[i] = f"close {c[i]} is {abs(c[i] / previous - 1):.0%} from the previous close {previous} (limit {max_jump:.0%})"
            continue
        previous = c[i]

    bad = code != ""
    rejected = [
        {"ts": bars["ts"].iloc[i], "raw": _raw(bars.iloc[i]), "code": code[i], "reason": f"{code[i]}: {detail[i]}"}
        for i in np.flatnonzero(bad)
    ]
    return Validated(good=_typed(bars.loc[~bad].reset_index(drop=True)), rejected=rejected)


def _typed(good: pd.DataFrame) -> pd.DataFrame:
    good = good.copy()
    good["volume"] = good["volume"].astype(np.int64)
    return good
