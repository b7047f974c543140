"""Feature monitoring's cost beside the runs it follows, and how often its drift check would alert
on an unchanged market (``mfs bench`` and ``mfs bench --drift``).

In the benchmark run: the statistics (and the session's drift check) a features run records are
timed inside that run, apart from its own seconds — "monitoring on" is the run's seconds plus
them, "off" the run's seconds, the same run; the self-audit is timed per sampled symbol.

``--drift``: a year of the synthetic market stored for a group of unchanged symbols and a group
whose volatility is multiplied by 5 from a session on (the offline Yahoo's ``volatility`` fault);
every session's drift check replayed (``mfs.features.monitoring.drift.replay``): the share of
clean checks that flag a feature (the false-positive rate) and the sessions a regime change takes
to be flagged.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from mfs.bench.scratch import scratch_database
from mfs.features import definitions
from mfs.features.monitoring import drift
from mfs.features.monitoring.audit import audit
from mfs.features.run import compute
from mfs.ingest.run import collect
from mfs.runs import RunReport
from mfs.sources.fake_yahoo import synthetic_session
from mfs.storage.connection import connection

UNCHANGED = ("AAPL", "MSFT", "KO", "JPM", "XOM", "GOOGL", "WMT", "PFE", "CVX", "HD")
SHOCKED = ("NVDA", "AMZN", "META", "JNJ", "PG")
SHOCK_DAY = dt.date(2026, 11, 2)
VOLATILITY_DEPENDENT = ("volatility_20", "natr_14", "range_pct", "bb_width")


def in_run(report: RunReport, prefix: str) -> dict[str, Any]:
    """The monitoring seconds of a features run beside its own seconds (the same run): all of it
    (``_monitoring_``), the statistics of what the run wrote (``_stats_``, every run that wrote)
    and the drift check (``_drift_s``, the first run past a session's close), each with its
    on / off ratio (run + it) / run; a part the run did not do has no figure (not 0)."""
    run_s = float(report.extra.get("seconds") or 0.0)
    summary = report.extra.get("monitoring") or {}
    out: dict[str, Any] = {}
    for part, key in (("monitoring", "seconds"), ("stats", "stats_seconds"), ("drift", "drift_seconds")):
        if key not in summary:
            continue
        seconds = float(summary[key])
        out[f"{prefix}_{part}_s"] = round(seconds, 3)
        out[f"{prefix}_{part}_ratio"] = round((run_s + seconds) / run_s, 3) if run_s else None
    return out


def audit_cost(symbols: list[str], progress: Callable[[str], None]) -> dict[str, Any]:
    """Seconds of the self-audit per sampled symbol (every stored interval of it)."""

    progress(f"self-audit of {len(symbols)} symbols")
    report = audit(symbols)
    seconds = report.extra["audit"]["seconds"]
    return {"audit_s_per_symbol": round(seconds / len(symbols), 3), "audit_values": report.extra["audit"]["values"]}


def drift_check_cost(progress: Callable[[str], None], rounds: int = 3) -> dict[str, Any]:
    """Seconds of the drift check of 1h on the benchmark's store (medians of ``rounds``): the
    first check (every session of its window counted from ``features``, as after a backfill or a
    definition change) and the daily one (the newest session counted, the others' counts read)."""

    features = definitions.load()
    drift.monitored(features)  # once per process, not the check's
    progress(f"drift check, first and daily, ×{rounds}")
    first: list[float] = []
    daily: list[float] = []
    for _ in range(rounds):
        for forget, times in (("TRUNCATE feature_drift_counts", first), (_FORGET_NEWEST, daily)):
            with connection() as conn, conn.cursor() as cur:
                cur.execute(forget)
                cur.execute("DELETE FROM feature_drift_checks WHERE interval = '1h'")
            began = time.perf_counter()
            drift.check("1h", features)
            times.append(time.perf_counter() - began)
    return {
        "drift_first_check_s": round(statistics.median(first), 3),
        "drift_daily_check_s": round(statistics.median(daily), 3),
    }


_FORGET_NEWEST = """DELETE FROM feature_drift_counts
                    WHERE session = (SELECT max(session) FROM feature_drift_counts WHERE interval = '1h')"""


def drift_rates(progress: Callable[[str], None], end: pd.Timestamp | None = None) -> dict[str, Any]:
    """The false-positive rate of the drift check over a clean year and the sessions a ×5
    volatility regime change takes to be flagged, on a scratch database."""

    end = end or pd.Timestamp("2026-11-20 16:30", tz="America/New_York").tz_convert("UTC")
    faults = {s: [f"volatility:{SHOCK_DAY}:5"] for s in SHOCKED}
    out: dict[str, Any] = {"drift_end": end.isoformat(), "drift_unchanged_symbols": len(UNCHANGED)}
    old = os.environ.get("MFS_CLOCK")
    os.environ["MFS_CLOCK"] = end.isoformat()
    try:
        with scratch_database():
            progress(f"a year of {len(UNCHANGED) + len(SHOCKED)} synthetic symbols, features")
            symbols = list(UNCHANGED + SHOCKED)
            collect(symbols, None, days=365, session=synthetic_session(asof=end, faults=faults))
            compute(symbols, None)
            features = definitions.load()
            for interval in ("1h", "1d"):
                progress(f"replaying every session's drift check ({interval})")
                for n in (5, len(UNCHANGED)):
                    replayed = drift.replay(interval, features, dt.date(2026, 3, 2), end.date(), UNCHANGED[:n])
                    checks = [v for vs in replayed.values() for v in vs if v.status in ("ok", "drift")]
                    alerts = sum(any(v.drifting for v in vs) for vs in replayed.values())
                    out[f"drift_{interval}_{n}sym_checks"] = len(checks)
                    out[f"drift_{interval}_{n}sym_flagged"] = sum(v.drifting for v in checks)
                    out[f"drift_{interval}_{n}sym_sessions_alerting"] = f"{alerts} of {len(replayed)}"
            replayed = drift.replay("1h", features, SHOCK_DAY, end.date(), SHOCKED)
            for feature in VOLATILITY_DEPENDENT:
                flagged = [i + 1 for i, (_d, vs) in enumerate(sorted(replayed.items()))
                           if any(v.feature == feature and v.drifting for v in vs)]  # fmt: skip
                out[f"drift_shock_sessions_to_flag_{feature}"] = flagged[0] if flagged else None
    finally:
        if old is None:
            os.environ.pop("MFS_CLOCK", None)
        else:
            os.environ["MFS_CLOCK"] = old
    return out
