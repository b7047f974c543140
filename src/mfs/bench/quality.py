"""How often the market-aware checks fire on clean series, how sensitive that is to their
thresholds, and how often they name injected defects: the measurement behind the ``quality``
defaults (``mfs bench --quality``).

Two corpora: a year of the synthetic market for every symbol the offline Yahoo knows (hourly and
daily), and real recorded daily bars — AAPL, GOOG, IBM, MSFT 2000–2013 from ``bokeh_sampledata``
(public-domain Quandl WIKI prices, split- and dividend-adjusted as Yahoo serves them), when that
package is installed (it is a test dependency). Every finding on a clean series is counted; on the
real bars a ``level_shift`` may be a real move (AAPL fell 52% on 2000-09-29), so those are listed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label
from mfs.config import QualityConfig, get_config
from mfs.ingest.quality import Split, examine
from mfs.market import NY, PRICE_COLUMNS
from mfs.sources.fake_yahoo import DEFAULT_UNIVERSE
from mfs.sources.synthetic import synthetic_bars

RECORDED = ("AAPL", "GOOG", "IBM", "MSFT")
YEAR = ("2024-12-01", "2025-12-01")
# Thresholds tried around the defaults: how many clean bars each would flag.
LEVEL_SHIFTS = (0.1, 0.15, 0.2, 0.25, 0.35, 0.5)
SPIKE_RATIOS = (1.2, 1.5, 2.0, 3.0)


def recorded_daily(symbol: str) -> pd.DataFrame | None:
    """Real daily bars scaled to Yahoo's adjustment (prices × adj_close / close); None without
    ``bokeh_sampledata``."""
    try:
        from bokeh_sampledata import stocks  # optional: a test dependency carries the recorded bars
    except ImportError:
        return None
    raw = pd.DataFrame(getattr(stocks, symbol))
    factor = raw["adj_close"].astype(float) / raw["close"].astype(float)
    days = pd.DatetimeIndex(pd.to_datetime(raw["date"])).tz_localize(NY).tz_convert("UTC")
    frame = pd.DataFrame({"ts": days})
    for column in PRICE_COLUMNS:
        frame[column] = raw[column].astype(float).to_numpy() * factor.to_numpy()
    frame["adj_close"] = raw["adj_close"].astype(float).to_numpy()
    frame["volume"] = raw["volume"].astype(float).round().astype(np.int64).to_numpy()
    return frame


def _corpora() -> dict[str, list[tuple[str, pd.DataFrame]]]:
    asof = pd.Timestamp(YEAR[1], tz="UTC")
    out: dict[str, list[tuple[str, pd.DataFrame]]] = {
        f"synthetic {interval}": [(s, synthetic_bars(s, interval, *YEAR, asof=asof)) for s in DEFAULT_UNIVERSE]
        for interval in ("1h", "1d")
    }
    recorded = [(s, frame) for s in RECORDED if (frame := recorded_daily(s)) is not None]
    if recorded:
        out["recorded 1d"] = recorded
    return out


def _count(series: list[tuple[str, pd.DataFrame]], interval: str, rules: QualityConfig) -> tuple[Counter, int, list]:
    kinds: Counter = Counter()
    held, listed = 0, []
    for symbol, bars in series:
        found = examine(bars, interval, rules)
        held += int(found.held.sum())
        for f in found.findings:
            kinds[f.kind] += 1
            listed.append(f"{symbol} {f.ts.tz_convert(NY).date()} {f.kind}: {f.detail}")
    return kinds, held, listed


# Injected defects (name, kind expected, held or not, how the bars are changed from bar ``at`` on).
DEFECTS: tuple[tuple[str, str, bool], ...] = (
    ("spike ×10", "power_of_ten", True),
    ("spike ×100", "power_of_ten", True),
    ("spike ÷100", "power_of_ten", True),
    ("spike ×3", "spike", True),
    ("level shift -70%", "level_shift", False),
    ("level shift +150%", "level_shift", False),
    ("unadjusted 2:1 split", "unadjusted_split", True),
    ("phantom 3:1 split", "phantom_split", True),
)


def _inject(bars: pd.DataFrame, name: str, at: int) -> tuple[pd.DataFrame, list[Split]]:
    bars = bars.copy()
    prices = list(PRICE_COLUMNS)
    one, rest = bars.index == at, bars.index >= at
    split = [Split(daily_bar_label(bars.loc[at, "ts"].tz_convert(NY).date()), 2.0 if "2:1" in name else 3.0)]
    changes = {
        "spike ×10": (one, 10.0),
        "spike ×100": (one, 100.0),
        "spike ÷100": (one, 0.01),
        "spike ×3": (one, 3.0),
        "level shift -70%": (rest, 0.3),
        "level shift +150%": (rest, 2.5),
        "unadjusted 2:1 split": (rest, 0.5),
        "phantom 3:1 split": (~rest, 1 / 3),
    }
    mask, factor = changes[name]
    bars.loc[mask, prices] = bars.loc[mask, prices] * factor
    return bars, split if "split" in name else []


def hit_rates(series: list[tuple[str, pd.DataFrame]], interval: str, rules: QualityConfig) -> dict[str, str]:
    """Each defect injected once per series at the first bar of a session in its middle: how
    often the check names it, with the right outcome (held back or stored)."""
    out = {}
    for name, kind, held in DEFECTS:
        hits = 0
        for _symbol, clean in series:
            ns = pd.DatetimeIndex(clean["ts"])
            days = ns.tz_convert(NY).normalize()
            at = int(np.flatnonzero(days == days[len(days) // 2])[0])
            bars, splits = _inject(clean, name, at)
            found = examine(bars, interval, rules, splits=splits)
            named = [f for f in found.findings if f.ts == ns[at]]
            hits += any(f.kind == kind and f.held == held for f in named)
        out[name] = f"{hits}/{len(series)} ({kind}, {'held back' if held else 'stored'})"
    return out


def false_positive_rates() -> dict[str, Any]:
    """Per corpus: bars, findings by kind and per 10,000 bars, bars held back, and how many bars
    each level-shift and spike threshold around the defaults would flag."""
    rules = get_config().quality
    out: dict[str, Any] = {}
    for name, series in _corpora().items():
        interval = name.split()[-1]
        bars = sum(len(b) for _s, b in series)
        kinds, held, listed = _count(series, interval, rules)
        sweep = {
            f"level_shift_min={x}": sum(
                _count(series, interval, rules.model_copy(update={"level_shift_min": x}))[0].values()
            )
            for x in LEVEL_SHIFTS
        }
        sweep |= {  # a step below level_shift_min is never looked at: lower it with the ratio
            f"spike_min_ratio={x} (bars held)": _count(
                series,
                interval,
                rules.model_copy(update={"spike_min_ratio": x, "level_shift_min": min(rules.level_shift_min, x - 1)}),
            )[1]
            for x in SPIKE_RATIOS
        }
        out[name] = {
            "series": len(series),
            "bars": bars,
            "findings": dict(kinds),
            "findings_per_10k_bars": round(1e4 * sum(kinds.values()) / bars, 2),
            "held_back": held,
            "listed": listed[:10],
            "sweep": sweep,
            "injected": hit_rates(series, interval, rules),
        }
    return out
