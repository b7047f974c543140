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

No check here looks at the size of a move: a market moves 70% in an hour. Whether a plausible
bar is a market event or a data error is decided from evidence by ``mfs.ingest.quality``, which
stores it with an anomaly or holds it back, never quarantines it.

A frame that cannot be checked bar by bar — a required column missing, timestamps without a
timezone — raises ValidationError naming the problem: the caller fails that symbol.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from mfs.calendar import hourly_bar_starts, sessions
from mfs.errors import ValidationError
from mfs.market import BAR_COLUMNS, NY, PRICE_COLUMNS


@dataclass(frozen=True)
class Finding:
    """An anomaly of one bar (``mfs.ingest.quality``): stored with the bar, or the reason it is
    held back."""

    ts: pd.Timestamp
    kind: str
    severity: str  # info, warning, high
    detail: str
    held: bool = False


@dataclass
class Validated:
    """A response's bars after validation and the quality checks: ``good`` is what is stored."""

    good: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)  # {ts, raw, reason, code}
    held: pd.DataFrame | None = None  # plausible bars held back on evidence (``findings`` say why)
    findings: list[Finding] = field(default_factory=list)
    served: tuple[pd.Timestamp, pd.Timestamp] | None = None  # the first and last bar served
    actions: pd.DataFrame | None = None  # the splits and dividends served with the bars

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


@lru_cache(maxsize=64)
def expected_labels(interval: str, first_ns: int, last_ns: int) -> np.ndarray:
    """The sorted bar labels (UTC nanoseconds) of the New York days from ``first_ns`` to
    ``last_ns``. Cached on the bars' span too: the symbols of a run mostly share it, and the
    conversion to New York days costs more than the rest of a one-bar validation."""
    lo = pd.Timestamp(first_ns, tz="UTC").tz_convert(NY).normalize()
    hi = pd.Timestamp(last_ns, tz="UTC").tz_convert(NY).normalize()
    return _labels_between(interval, lo.value, hi.value)


@lru_cache(maxsize=64)
def _labels_between(interval: str, lo_ns: int, hi_ns: int) -> np.ndarray:
    """Cached per day range: every symbol of a run asks for the same window."""
    lo, hi = pd.Timestamp(lo_ns, tz="UTC"), pd.Timestamp(hi_ns, tz="UTC")
    if interval == "1h":
        labels = hourly_bar_starts(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))
    else:  # == daily_bar_label(day) for each session, vectorised
        days = sessions(lo - pd.Timedelta(days=1), hi + pd.Timedelta(days=1))
        labels = pd.DatetimeIndex(days).tz_localize(NY).tz_convert("UTC")
    return labels.as_unit("ns").asi8


def _check_frame(bars: pd.DataFrame) -> None:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValidationError(f"bars lack the column(s) {', '.join(missing)} (expected {', '.join(BAR_COLUMNS)})")
    if not isinstance(bars["ts"].dtype, pd.DatetimeTZDtype):
        raise ValidationError(
            f"bar timestamps must be timezone-aware (UTC), got dtype {bars['ts'].dtype}: "
            "a naive time is ambiguous (New York or UTC?)"
        )


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
        if isinstance(col.dtype, np.dtype):
            values[:, j] = col.to_numpy()  # cast on assignment: the cheap path for the usual dtypes
        else:  # a nullable extension dtype: its missing values become NaN
            values[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
    return values, wrong


@dataclass(frozen=True)
class _Bars:
    """One response's bars, sorted by time, with their numbers parsed once for all the checks."""

    frame: pd.DataFrame
    ns: np.ndarray  # the timestamps as UTC nanoseconds, NaT as NAT_NS
    interval: str
    asof: pd.Timestamp | None
    prices: np.ndarray  # rows of (open, high, low, close)
    volume: np.ndarray
    adj: np.ndarray
    wrong_type: np.ndarray  # a cell held something that is not a number at all


# A check gets the bars and which of them still stand (failed no earlier check) and returns the
# bars it fails with a detail text per bar, or None when it has nothing to say about these bars.
Found = tuple[np.ndarray, Callable[[int], str]]
Check = Callable[[_Bars, np.ndarray], Found | None]
_NUMBER_COLUMNS = [*PRICE_COLUMNS, "volume", "adj_close"]
NAT_NS = np.iinfo(np.int64).min  # how numpy and pandas store NaT


def _duplicate_ts(b: _Bars, standing: np.ndarray) -> Found | None:
    # The bars are sorted (stably), so a repeated timestamp follows its first bar.
    repeated = np.zeros(len(b.ns), dtype=bool)
    repeated[1:] = b.ns[1:] == b.ns[:-1]
    return repeated, lambda i: "a bar with this timestamp came earlier in the response"


def _wrong_type(b: _Bars, standing: np.ndarray) -> Found | None:
    bars = b.frame
    return (
        b.wrong_type,
        lambda i: (
            "not a number: "
            + ", ".join(
                f"{k}={bars[k].iloc[i]!r}"
                for k in _NUMBER_COLUMNS
                if bars[k].iloc[i] is not None and not isinstance(bars[k].iloc[i], (int, float, np.number))
            )
        ),
    )


def _not_finite(b: _Bars, standing: np.ndarray) -> Found | None:
    prices, volume = b.prices, b.volume
    return (
        ~np.isfinite(prices).all(axis=1) | ~np.isfinite(volume),
        lambda i: (
            "missing or non-finite "
            + ", ".join(
                k
                for k, v in zip([*PRICE_COLUMNS, "volume"], [*prices[i], volume[i]], strict=True)
                if not math.isfinite(v)
            )
        ),
    )


def _non_positive(b: _Bars, standing: np.ndarray) -> Found | None:
    prices, adj = b.prices, b.adj
    return (
        (prices <= 0).any(axis=1) | (np.isfinite(adj) & (adj <= 0)),
        lambda i: (
            "price ≤ 0: "
            + ", ".join(
                f"{k}={v}" for k, v in zip([*PRICE_COLUMNS, "adj_close"], [*prices[i], adj[i]], strict=True) if v <= 0
            )
        ),
    )


def _range(b: _Bars, standing: np.ndarray) -> Found | None:
    o, h, lo, c = b.prices.T
    return (
        (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (lo > h),
        lambda i: f"low ≤ open, close ≤ high violated: open={o[i]} high={h[i]} low={lo[i]} close={c[i]}",
    )


def _bad_volume(b: _Bars, standing: np.ndarray) -> Found | None:
    volume = b.volume
    return (volume < 0) | (np.floor(volume) != volume), lambda i: f"volume {volume[i]} is negative or not an integer"


def _future(b: _Bars, standing: np.ndarray) -> Found | None:
    if b.asof is None:
        return None
    ts, clock = b.frame["ts"], pd.Timestamp(b.asof)
    return (
        b.ns > clock.tz_convert("UTC").value,
        lambda i: f"{ts.iloc[i].isoformat()} starts after the run's clock {clock.isoformat()}",
    )


def _outside_session(b: _Bars, standing: np.ndarray) -> Found | None:
    # Session labels for the span of the bars still standing (a bar dated 2100 is already out).
    ts, dated = b.frame["ts"], standing & (b.ns != NAT_NS)
    span = b.ns[dated]
    expected = expected_labels(b.interval, int(span.min()), int(span.max())) if len(span) else np.empty(0, np.int64)
    what = (
        "an NYSE hourly bar start (09:30…15:30 New York on a session)" if b.interval == "1h" else "an NYSE session date"
    )
    at = np.minimum(np.searchsorted(expected, b.ns), len(expected) - 1)
    labelled = expected[at] == b.ns if len(expected) else np.zeros(len(b.ns), dtype=bool)
    return ~labelled, lambda i: f"{ts.iloc[i].isoformat()} is not {what}"


# In the module docstring's order: a bar is quarantined for the first check it fails.
CHECKS: list[tuple[str, Check]] = [
    ("duplicate_ts", _duplicate_ts),
    ("wrong_type", _wrong_type),
    ("not_finite", _not_finite),
    ("non_positive", _non_positive),
    ("range", _range),
    ("bad_volume", _bad_volume),
    ("future", _future),
    ("outside_session", _outside_session),
]


def validate_bars(bars: pd.DataFrame, interval: str, *, asof: pd.Timestamp | None = None) -> Validated:
    """Split ``bars`` (columns ts, open, high, low, close, adj_close, volume) into good bars and
    quarantine records. ``ts`` must be timezone-aware (UTC); bars starting after ``asof`` (when
    given) are ``future``. The good frame keeps the input's column order."""
    _check_frame(bars)
    if bars.empty:
        return Validated(good=bars.copy())
    frame, ns = _sorted(bars)
    numbers, wrong_type = _numbers(frame, _NUMBER_COLUMNS)
    parsed = _Bars(frame, ns, interval, asof, numbers[:, :4], numbers[:, 4], numbers[:, 5], wrong_type)
    code = np.full(len(frame), "", dtype=object)
    detail = np.full(len(frame), "", dtype=object)
    standing = np.ones(len(frame), dtype=bool)
    for name, check in CHECKS:
        found = check(parsed, standing)
        if found is None:
            continue
        mask, text = found
        new = mask & standing
        if not new.any():
            continue
        code[new] = name
        for i in np.flatnonzero(new).tolist():
            detail[i] = text(i)
        standing &= ~new

    bad = ~standing
    if not bad.any():
        return Validated(good=_typed(frame))
    rejected = [
        {"ts": frame["ts"].iloc[i], "raw": _raw(frame.iloc[i]), "code": code[i], "reason": f"{code[i]}: {detail[i]}"}
        for i in np.flatnonzero(bad)
    ]
    return Validated(good=_typed(frame.loc[~bad].reset_index(drop=True)), rejected=rejected)


def _sorted(bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy of ``bars`` in time order with a fresh index, and its timestamps as UTC nanoseconds.
    A source's bars usually come in order: then they are copied, not sorted (a third of the time
    of validating one bar)."""
    ns = _nanoseconds(bars["ts"])
    if (ns[1:] >= ns[:-1]).all() and not (ns == NAT_NS).any():
        frame = bars.copy()
        frame.index = pd.RangeIndex(len(frame))
        return frame, ns
    frame = bars.sort_values("ts", kind="stable").reset_index(drop=True)
    return frame, _nanoseconds(frame["ts"])


def _nanoseconds(ts: pd.Series) -> np.ndarray:
    values = ts.array  # a DatetimeArray: _check_frame made sure of the dtype
    return (values if values.unit == "ns" else values.as_unit("ns")).asi8


def _typed(good: pd.DataFrame) -> pd.DataFrame:
    """``good`` (a frame of this module's own, not the caller's) with integer volumes."""
    if good["volume"].dtype != np.int64:
        good["volume"] = good["volume"].astype(np.int64)
    return good
