"""Bad input corpus: malformed bars through ``store_bars`` (parsed frames) and through the
offline Yahoo's chart JSON (the real yfinance parsing runs). Every bad bar is quarantined with
its reason and counted; the good bars beside it are stored. Where yfinance itself drops or
repairs a bar before we see it, or refuses the whole payload, that exact behaviour is asserted:

===================== =========================================================================
JSON defect           what happens (yfinance 1.7 + mfs)
===================== =========================================================================
a null close          kept as NaN by yfinance → quarantined ``not_finite``
an all-null row       dropped by yfinance (never reaches us; nothing to quarantine)
``1e999`` (inf) high  kept as inf → quarantined ``not_finite``
duplicate timestamp   yfinance keeps the first bar of the timestamp, drops the second
unsorted timestamps   sorted (yfinance, then validation) → stored in order, nothing quarantined
future timestamp      kept by yfinance → quarantined ``future`` (after the run's clock)
fractional volume     truncated to an integer by yfinance (1234.5 → 1234) → stored as 1234
a string price/volume yfinance cannot parse the payload → the symbol fails, reason names the value
mismatched arrays     yfinance: "All arrays must be of the same length" → the symbol fails
a missing field       yfinance: KeyError 'volume' → the symbol fails, naming the field
===================== =========================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.ingest import collect
from mfs.ingest.write import store_bars
from mfs.runs import recorded_run
from mfs.sources.fake_yahoo import SyntheticYahoo, _mount
from mfs.sources.synthetic import synthetic_bars
from tests.reliability.reliability_helpers import ASOF

pytestmark = pytest.mark.faults

END = pd.Timestamp(ASOF)
START = pd.Timestamp("2025-11-10", tz="UTC")
AT = 30  # the row a defect is put in (well inside the frame: not the first, not the last)


def _set(column: str, value, dtype=None):
    def apply(f: pd.DataFrame) -> pd.DataFrame:
        if dtype is not None:
            f[column] = f[column].astype(dtype)
        f.loc[AT, column] = value
        return f

    return apply


def _add(ts: pd.Timestamp | str | None = None, shift: pd.Timedelta | None = None):
    """Append a copy of row AT at another timestamp (a bar the source should never have sent)."""

    def apply(f: pd.DataFrame) -> pd.DataFrame:
        extra = f.iloc[[AT]].copy()
        extra["ts"] = pd.Timestamp(ts) if ts is not None else extra["ts"].iloc[0] + shift
        return pd.concat([f, extra], ignore_index=True)

    return apply


def _wrong_timezone(f):
    """Every bar labelled with its New York wall-clock time as if it were UTC (09:30 'UTC')."""
    naive = f["ts"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    f.loc[AT, "ts"] = naive.iloc[AT].tz_localize("UTC")
    return f


def _mul(column: str, factor: float):
    def apply(f):
        f.loc[AT, column] = f.loc[AT, column] * factor
        return f

    return apply


# kind -> (interval, corruption of a good frame, expected quarantine code)
CORPUS = {
    "nan_close": ("1h", _set("close", np.nan), "not_finite"),
    "nan_open": ("1h", _set("open", np.nan), "not_finite"),
    "none_high": ("1h", _set("high", None, object), "not_finite"),
    "inf_high": ("1h", _set("high", np.inf), "not_finite"),
    "minus_inf_low": ("1h", _set("low", -np.inf), "not_finite"),
    "negative_price": ("1h", lambda f: _set("low", -abs(f.loc[AT, "low"]))(f), "non_positive"),
    "zero_price": ("1h", _set("open", 0.0), "non_positive"),
    "negative_adj_close": ("1d", lambda f: _set("adj_close", -abs(f.loc[AT, "adj_close"]))(f), "non_positive"),
    "high_below_low": ("1h", lambda f: _set("high", f.loc[AT, "low"] * 0.99)(f), "range"),
    "close_above_high": ("1h", lambda f: _set("close", f.loc[AT, "high"] * 1.01)(f), "range"),
    "close_below_low": ("1h", lambda f: _set("close", f.loc[AT, "low"] * 0.99)(f), "range"),
    "open_above_high": ("1h", lambda f: _set("open", f.loc[AT, "high"] * 1.01)(f), "range"),
    "negative_volume": ("1h", _set("volume", -100), "bad_volume"),
    "fractional_volume": ("1h", _set("volume", 1234.5, float), "bad_volume"),
    "nan_volume": ("1h", _set("volume", np.nan, float), "not_finite"),
    "inf_volume": ("1h", _set("volume", np.inf, float), "not_finite"),
    "string_price": ("1h", _set("close", "12.5.3", object), "wrong_type"),
    "string_volume": ("1h", _set("volume", "lots", object), "wrong_type"),
    "duplicate_ts": ("1h", _add(shift=pd.Timedelta(0)), "duplicate_ts"),
    "future_ts": ("1h", _add(ts="2025-12-01 15:30Z"), "future"),
    "far_future_ts": ("1d", _add(ts="2100-01-04 05:00Z"), "future"),
    "weekend_bar": ("1h", _add(ts="2025-11-15 15:30Z"), "outside_session"),
    "off_hour_bar": ("1h", _add(shift=pd.Timedelta(minutes=20)), "outside_session"),
    "holiday_bar": ("1d", _add(ts="2025-07-04 04:00Z"), "outside_session"),
    "daily_at_session_open": ("1d", _add(shift=pd.Timedelta(hours=37, minutes=30)), "outside_session"),
    "wrong_timezone": ("1h", _wrong_timezone, "outside_session"),
}


def _frame(symbol: str, interval: str) -> pd.DataFrame:
    start = START - pd.Timedelta(days=40) if interval == "1d" else START
    bars = synthetic_bars(symbol, interval, start, END, END)
    return bars[["ts", "open", "high", "low", "close", "adj_close", "volume"]].reset_index(drop=True)


def test_every_kind_of_bad_bar_is_quarantined_with_its_reason_and_the_good_bars_are_stored(conn):
    assert len(CORPUS) >= 20
    frames: dict[str, dict[str, pd.DataFrame]] = {"1h": {}, "1d": {}}
    clean: dict[str, pd.DataFrame] = {}
    names = {}
    for i, (kind, (interval, corrupt, _)) in enumerate(CORPUS.items()):
        symbol = f"BAD{i:02d}"
        names[symbol] = kind
        clean[symbol] = _frame("AAPL", interval)
        frames[interval][symbol] = corrupt(clean[symbol].copy())
    with recorded_run("store", {"corpus": list(CORPUS)}, raise_on_failure=False) as report:
        for interval, by_symbol in frames.items():
            store_bars(report, by_symbol, interval, "corpus", asof=END)
    results = {r.symbol: r for r in report.results}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, count(*), min(reason) FROM quarantine WHERE run_id = %s GROUP BY 1", (report.run_id,)
        )
        quarantined = {s: (n, reason) for s, n, reason in cur.fetchall()}
        cur.execute("SELECT symbol, count(*) FROM market_data GROUP BY 1")
        stored = dict(cur.fetchall())
    for symbol, kind in names.items():
        interval, _, code = CORPUS[kind]
        result = results[symbol]
        assert result.status == "ok" and result.quarantine_reasons == {code: 1}, (kind, result)
        n, reason = quarantined[symbol]
        assert n == 1 and reason.startswith(f"{code}: "), (kind, reason)
        added = len(frames[interval][symbol]) - len(clean[symbol])
        assert stored[symbol] == len(clean[symbol]) + added - 1, kind  # every good bar beside it
    assert report.counts().quarantine_reasons == {
        code: sum(1 for _, _, c in CORPUS.values() if c == code) for _, _, code in CORPUS.values()
    }
    # The reasons name what is wrong, with the values.
    assert "12.5.3" in quarantined[next(s for s, k in names.items() if k == "string_price")][1]
    assert "volume" in quarantined[next(s for s, k in names.items() if k == "nan_volume")][1]


def test_unsorted_empty_and_unusable_frames(conn):
    good = _frame("MSFT", "1h")
    with recorded_run("store", {}, raise_on_failure=False) as report:
        store_bars(
            report,
            {
                "UNSORTED": good.sample(frac=1.0, random_state=7),  # any order: sorted, all stored
                "EMPTY": good.iloc[:0],
                "NOVOLUME": good.drop(columns=["volume"]),
                "NAIVE": good.assign(ts=good["ts"].dt.tz_localize(None)),
            },
            "1h",
            "corpus",
            asof=END,
        )
    results = {r.symbol: r for r in report.results}
    assert (results["UNSORTED"].status, results["UNSORTED"].inserted, results["UNSORTED"].quarantined) == (
        "ok",
        len(good),
        0,
    )
    assert (results["EMPTY"].status, results["EMPTY"].inserted) == ("ok", 0)
    assert results["NOVOLUME"].status == "failed" and "lack the column(s) volume" in results["NOVOLUME"].reason
    assert results["NAIVE"].status == "failed" and "timezone-aware" in results["NAIVE"].reason
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, count(*) FROM market_data GROUP BY 1")
        assert dict(cur.fetchall()) == {"UNSORTED": len(good)}


class DamagedYahoo(SyntheticYahoo):
    """The offline Yahoo with one JSON-level defect per symbol, applied to the chart body after
    it is built — exactly the bytes yfinance then parses."""

    def __init__(self, damage, **kwargs):
        super().__init__(**kwargs)
        self.damage = damage

    def _chart_json(self, symbol, interval, bars, asof, params, events):
        body = super()._chart_json(symbol, interval, bars, asof, params, events)
        result = body["chart"]["result"][0]
        if symbol in self.damage and len(result.get("timestamp", [])) > 10:  # not yfinance's tz probe
            self.damage[symbol](result, result["indicators"]["quote"][0])
        return body


def _swap(seq, i, j):
    seq[i], seq[j] = seq[j], seq[i]


JSON_DAMAGE = {
    "NVDA": lambda r, q: q["close"].__setitem__(-3, None),
    "AMZN": lambda r, q: [q[k].__setitem__(-3, None) for k in ("open", "high", "low", "close", "volume")],
    "META": lambda r, q: q["high"].__setitem__(-3, float("inf")),  # json.dumps writes Infinity
    "GOOGL": lambda r, q: r["timestamp"].__setitem__(-3, r["timestamp"][-4]),
    "JPM": lambda r, q: [_swap(a, -3, -4) for a in [r["timestamp"], *q.values()]],
    "XOM": lambda r, q: r["timestamp"].__setitem__(-1, r["timestamp"][-1] + 86400 * 5),
    "JNJ": lambda r, q: q["volume"].__setitem__(-3, 1234.5),
    "V": lambda r, q: q["close"].__setitem__(-3, "abc"),
    "MA": lambda r, q: q["close"].pop(),
    "HD": lambda r, q: q.pop("volume"),
}


def test_chart_json_defects_through_the_real_yfinance_parsing(conn, fake_yahoo):
    symbols = ["AAPL", *JSON_DAMAGE]
    session = _mount(DamagedYahoo(JSON_DAMAGE, asof=ASOF))
    report = collect(symbols, "1h", days=16, session=session, raise_on_failure=False)
    results = {r.symbol: r for r in report.results}
    n = results["AAPL"].fetched
    assert n > 70 and results["AAPL"].inserted == n
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, count(*) FROM market_data GROUP BY 1")
        stored = dict(cur.fetchall())
        cur.execute("SELECT symbol, reason FROM quarantine")
        quarantined = dict(cur.fetchall())
        cur.execute("SELECT volume FROM market_data WHERE symbol = 'JNJ' ORDER BY ts DESC OFFSET 2 LIMIT 1")
        jnj_volume = cur.fetchone()[0]

    def outcome(symbol):
        r = results[symbol]
        return r.status, r.fetched, r.quarantine_reasons, stored.get(symbol, 0)

    assert outcome("NVDA") == ("ok", n, {"not_finite": 1}, n - 1)
    assert "close" in quarantined["NVDA"]
    assert outcome("AMZN") == ("ok", n - 1, {}, n - 1)  # yfinance dropped the all-null row
    assert outcome("META") == ("ok", n, {"not_finite": 1}, n - 1)
    assert outcome("GOOGL") == ("ok", n - 1, {}, n - 1)  # yfinance kept the first of the duplicates
    assert outcome("JPM") == ("ok", n, {}, n)  # sorted, nothing lost or quarantined
    assert outcome("XOM") == ("ok", n, {"future": 1}, n - 1)
    assert outcome("JNJ") == ("ok", n, {}, n) and jnj_volume == 1234  # yfinance truncated 1234.5
    for symbol, text in {
        "V": "could not convert string to float: 'abc'",
        "MA": "same length",
        "HD": "'volume'",
    }.items():
        status, _, _, rows = outcome(symbol)
        assert (status, rows) == ("failed", 0) and text in results[symbol].reason, results[symbol].reason
    # The good symbol is whole, and the failed ones failed the run honestly.
    assert stored["AAPL"] == n and report.extra["status"] == "failed"
