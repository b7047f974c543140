"""Bar validation: every bar from the source is checked before it can reach ``market_data``.

A rejected bar is not dropped silently: it becomes a quarantine row (raw values, reason) and is
counted by reason in the run's summary; the good bars beside it are stored. Checks, in order
(a bar is quarantined for the first one it fails):

- ``duplicate_ts``    a second bar with the same timestamp in one response
- ``wrong_type``      a price or volume that is not a number (e.g. a string)
- ``not_finite``      open/high/low/close/volume missing, NaN or infinite
- ``non_positive``    a price ≤ 0 (adj_close too, when present)
- ``range``           low ≤ open, close ≤ high violated
- ``bad_volume``      volume negative or not an integer
- ``future``          a bar starting after the run's clock (``asof``)
- ``outside_session`` an hourly bar that is not one of the NYSE session's bar starts (09:30 …
                      15:30 New York, per ``mfs.calendar``), a daily bar not labelled with a
                      session date
- ``absurd_jump``     the close moved more than ``ingest.max_jump`` (a fraction) from the
                      previous accepted close in the same response

A frame that cannot be checked bar by bar — a required column missing, timestamps without a
timezone — raises ValidationError naming the problem: the caller fails that symbol.
"""

from __future__ import annotations

import math
from functools import lru_cache
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mfs.calendar import hourly_bar_starts, sessions
from mfs.market import BAR_COLUMNS, NY, PRICE_COLUMNS
from mfs.errors import ValidationError



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


def _check_frame(bars: pd.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValidationError(f"bars lack the column(s) {', '.join(missing)} (expected {', '.join(BAR_COLUMNS)})")
    if not isinstance(bars["ts"].dtype, pd.DatetimeTZDtype):
        raise ValidationError(f"bar timestamps must be timezone-aware (UTC), got dtype {bars['ts'].dtype}: "
                              "a naive time is ambiguous (New York or UTC?)")


def _numbers(bars: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The columns as floats, and which cells held something that is not a number at all."""
    values = np.empty((len(bars), len(columns)))
    wrong = np.zeros(len(bars), dtype=bool)
    for j, name in enumerate(columns):
        col = bars[name]
        if col.dtype == object:  # only a frame built from loose input pays for the coercion
            numeric = pd.to_numeric(col, errors="coerce")
            wrong |= (numeric.isna() & col.notna()).to_numpy()
            col = numeric
        values[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
    return values, wrong


def validate_bars(bars: pd.DataFrame, interval: str, *, max_jump: float, asof: pd.Timestamp | None = None) -> Validated:
    """Split ``bars`` (columns ts, open, high, low, close, adj_close, volume) into good bars and
    quarantine records. ``ts`` must be timezone-aware (UTC); bars starting after ``asof`` (when
    given) are ``future``. The good frame keeps the input's column order."""
    _check_frame(bars)
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

    numbers, wrong_type = _numbers(bars, [*PRICE_COLUMNS, "volume", "adj_close"])
    prices, volume, adj = numbers[:, :4], numbers[:, 4], numbers[:, 5]
    o, h, lo, c = prices.T

    flag(bars["ts"].duplicated().to_numpy(), "duplicate_ts", lambda i: "a bar with this timestamp came earlier in the response")
    flag(wrong_type, "wrong_type", lambda i: "not a number: " + ", ".join(
        f"{k}={bars[k].iloc[i]!r}" for k in [*PRICE_COLUMNS, "volume", "adj_close"]
        if bars[k].iloc[i] is not None and not isinstance(bars[k].iloc[i], (int, float, np.number))))
    flag(~np.isfinite(prices).all(axis=1) | ~np.isfinite(volume), "not_finite",
         lambda i: "missing or non-finite " + ", ".join(
             k for k, v in zip([*PRICE_COLUMNS, "volume"], list(prices[i]) + [volume[i]]) if not math.isfinite(v)))
    flag((prices <= 0).any(axis=1) | (np.isfinite(adj) & (adj <= 0)), "non_positive",
         lambda i: "price ≤ 0: " + ", ".join(f"{k}={v}" for k, v in zip([*PRICE_COLUMNS, "adj_close"], list(prices[i]) + [adj[i]]) if v <= 0))
    flag((lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (lo > h), "range",
         lambda i: f"low ≤ open, close ≤ high violated: open={o[i]} high={h[i]} low={lo[i]} close={c[i]}")
    flag((volume < 0) | (np.floor(volume) != volume), "bad_volume", lambda i: f"volume {volume[i]} is negative or not an integer")
    if asof is not None:
        flag((bars["ts"] > asof).to_numpy(), "future",
             lambda i: f"{bars['ts'].iloc[i].isoformat()} starts after the run's clock {pd.Timestamp(asof).isoformat()}")
    # Session labels for the span of the bars still standing (a bar dated 2100 is already out).
    standing = bars["ts"][code == ""]
    expected = _expected_labels(interval, standing) if len(standing) else pd.DatetimeIndex([], tz="UTC")
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
