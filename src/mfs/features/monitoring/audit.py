"""The self-audit: recompute a sample of symbols from their stored bars with the current
definitions and compare every stored feature value (the production form of the suite's
incremental == full tests). Recorded in ``feature_audits`` and, per symbol, as a run of its own
in ``pipeline_runs`` / ``symbol_runs``; a mismatch beyond ``monitoring.audit_tolerance`` fails the
run naming the symbols and features.

A value matches when ``|stored - recomputed| <= tolerance × max(|stored|, |recomputed|, scale)``,
``scale`` being the mean absolute recomputed value of the column over the symbol's bars: a value
that is a difference of near-equal quantities (macd_hist, a return near 0) carries the rounding of
the quantities, not of itself (incremental runs reproduce a full recompute to ~3e-13 relative,
features.lookback_bars). NULL against a number is a mismatch; a bar without its feature row (or a
row without its bar) too. Running sums (OBV) are recomputed from the stored value of the first
bar, as an incremental run continues them: stored history before retention dropped it is not there.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg2 import sql

from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.features import definitions, engine
from mfs.features.model import FeatureSet
from mfs.flow_names import FEATURE_AUDIT
from mfs.market import normalize_symbols
from mfs.runs import RunReport, SymbolResult, recorded_run
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection
from mfs.storage.types import Cursor

KEPT_MISMATCHES = 50  # the mismatching values feature_audits keeps, worst first


@dataclass
class Mismatch:
    symbol: str
    interval: str
    feature: str
    ts: str
    stored: float | None
    recomputed: float | None
    rel_diff: float  # inf for NULL against a number or a missing row

    def describe(self) -> str:
        return f"{self.feature} at {self.ts}: stored {self.stored!r}, recomputed {self.recomputed!r}"


@dataclass
class SeriesAudit:
    rows: int = 0
    values: int = 0
    worst: Mismatch | None = None  # the largest difference, mismatching or not
    mismatches: list[Mismatch] = field(default_factory=list)
    mismatching_rows: int = 0


def audit_series(
    bars: dict[str, np.ndarray], stored: dict[str, np.ndarray], features: FeatureSet, names: Sequence[str], tol: float
) -> SeriesAudit:
    """Compare the stored rows of one series (``stored``: ts and a column per feature ``names``,
    NaN for NULL) with the recompute of ``features`` from its bars, from the bar of its first row
    on (running sums continued from that row's stored value). No I/O."""

    out = SeriesAudit()
    if not len(bars["ts"]) and not len(stored["ts"]):
        return out
    common, bar_at, row_at = np.intersect1d(bars["ts"], stored["ts"], return_indices=True)
    anchors = {n: float(stored[n][0]) for n in features.cumulative if len(stored["ts"]) and n in stored}
    start = int(np.searchsorted(bars["ts"], stored["ts"][0])) if len(stored["ts"]) else 0
    recomputed = engine.compute(
        bars["ts"][start:].astype("datetime64[us]"),
        *(bars[c][start:] for c in ("open", "high", "low", "close", "volume")),
        anchors={n: v for n, v in anchors.items() if not np.isnan(v)},
        definitions=features.definitions,
    )
    bar_at = bar_at - start
    bad_rows = np.zeros(len(common), dtype=bool)
    for name in names:
        a, b = stored[name][row_at], recomputed[name][bar_at].astype(np.float64)
        scale = float(np.nanmean(np.abs(b))) if np.isfinite(b).any() else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), max(scale, 1e-300))
        rel = np.where(np.isnan(a) & np.isnan(b), 0.0, np.where(np.isnan(a) != np.isnan(b), np.inf, rel))
        out.values += len(rel)
        if len(rel):
            i = int(np.argmax(rel))
            if out.worst is None or rel[i] > out.worst.rel_diff:
                out.worst = _mismatch(name, common[i], a[i], b[i], rel[i])
        bad = rel > tol
        bad_rows |= bad
        out.mismatches += [
            _mismatch(name, common[i], a[i], b[i], rel[i]) for i in np.flatnonzero(bad)[:KEPT_MISMATCHES]
        ]
    out.rows = len(common)
    unpaired = (
        len(bars["ts"]) - len(common) + len(stored["ts"]) - len(common)
    )  # a bar without its row, or a row without its bar
    out.mismatching_rows = int(bad_rows.sum()) + unpaired
    if unpaired:
        out.mismatches.append(Mismatch("", "", "(row)", f"{unpaired} bars/rows unpaired", None, None, float("inf")))
    return out


def _mismatch(name: str, ts: Any, a: float, b: float, rel: float) -> Mismatch:
    value = None if np.isnan(a) else float(a)
    return Mismatch(
        "", "", name, str(np.datetime64(ts, "us")) + "Z", value, None if np.isnan(b) else float(b), float(rel)
    )


def _read(cur: Cursor, symbol: str, interval: str, names: Sequence[str]) -> tuple[dict, dict]:
    """The series' bars and feature rows, in one snapshot, up to its first pending bar: a bar
    stored after the series' newest feature row was computed (a collection or correction the next
    features run has not seen yet) and every later one are left out — their rows are pending,
    not wrong."""
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    cur.execute(
        """WITH done AS (SELECT max(computed_at) AS at FROM features WHERE symbol = %(s)s AND interval = %(i)s),
                cut AS (SELECT min(m.ts) AS ts FROM market_data m, done
                        WHERE m.symbol = %(s)s AND m.interval = %(i)s AND m.ingested_at > done.at)
           SELECT m.ts, m.open, m.high, m.low, m.close, m.volume FROM market_data m, cut
           WHERE m.symbol = %(s)s AND m.interval = %(i)s AND m.ts < coalesce(cut.ts, 'infinity')
           ORDER BY m.ts""",
        {"s": symbol, "i": interval},
    )
    rows = cur.fetchall()
    bars = {"ts": _ts([r[0] for r in rows])}
    for i, c in enumerate(("open", "high", "low", "close", "volume"), start=1):
        bars[c] = np.array([r[i] for r in rows], dtype=np.float64)
    cur.execute(
        sql.SQL(
            "SELECT ts, {} FROM features WHERE symbol = %(s)s AND interval = %(i)s AND ts < coalesce("
            "(SELECT min(m.ts) FROM market_data m WHERE m.symbol = %(s)s AND m.interval = %(i)s AND m.ingested_at > "
            "(SELECT max(computed_at) FROM features WHERE symbol = %(s)s AND interval = %(i)s)), 'infinity') "
            "ORDER BY ts"
        ).format(sql.SQL(", ").join(sql.SQL("{}::float8").format(sql.Identifier(n)) for n in names)),
        {"s": symbol, "i": interval},
    )
    rows = cur.fetchall()
    values = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), len(names))
    stored = {"ts": _ts([r[0] for r in rows]), **{n: values[:, i] for i, n in enumerate(names)}}
    return bars, stored


def _ts(values: list) -> np.ndarray:
    return np.array([np.datetime64(v.replace(tzinfo=None), "us") for v in values], dtype="datetime64[us]")


def _audited_columns(cur: Cursor, features: FeatureSet) -> list[str]:
    """The columns of ``features`` whose registered version is filled (a version awaiting its
    fill holds the old definition's values until the next run)."""
    cur.execute(
        """SELECT name FROM feature_registry WHERE superseded_at IS NULL AND pruned_at IS NULL
             AND retired_at IS NULL AND filled_at IS NOT NULL"""
    )
    filled = {n for (n,) in cur.fetchall()}
    return [n for n in features.names if n in filled]


def sample_symbols(symbols: Sequence[str] | None, sample: int | None) -> list[str]:
    """``symbols`` (normalised), or ``sample`` symbols (default monitoring.audit_sample) drawn at
    random from every stored symbol."""
    if symbols:
        return normalize_symbols(list(symbols))
    n = sample if sample is not None else get_config().monitoring.audit_sample
    if n < 1:
        raise ConfigError(f"--sample = {n}: expected at least 1 symbol")
    with connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT symbol FROM stored_series ORDER BY 1")
        stored = [s for (s,) in cur.fetchall()]
    return sorted(random.sample(stored, min(n, len(stored))))


def audit(
    symbols: Sequence[str] | None = None,
    sample: int | None = None,
    *,
    features: FeatureSet | None = None,
    run_id: str | None = None,
    raise_on_failure: bool = True,
) -> RunReport:
    """Audit ``symbols`` (or a random ``sample``) in every configured interval; the run's report
    carries the ``feature_audits`` row in ``extra["audit"]``. Mismatches fail the run
    (RunFailedError naming symbol, interval and features) unless ``raise_on_failure=False``."""
    if features is None:
        features = definitions.load()
    cfg = get_config()
    chosen = sample_symbols(symbols, sample)
    params = {"symbols": chosen, "sample": sample, "tolerance": cfg.monitoring.audit_tolerance}
    with recorded_run(FEATURE_AUDIT, params, run_id=run_id, raise_on_failure=raise_on_failure) as report:
        started = time.perf_counter()
        report.extra["audit"] = _audit(report, chosen, list(cfg.intervals), features, cfg.monitoring.audit_tolerance)
        report.extra["audit"]["seconds"] = round(time.perf_counter() - started, 3)
        _record(report)
    return report


def _audit(report: RunReport, symbols: list[str], intervals: list[str], features: FeatureSet, tol: float) -> dict:
    totals: dict[str, Any] = {"rows": 0, "values": 0, "mismatching_rows": 0, "mismatches": [], "worst": None}
    with connection() as conn, conn.cursor() as cur:
        names = _audited_columns(cur, features)
        conn.rollback()
        for symbol in symbols:
            for interval in intervals:
                t0 = time.perf_counter()
                bars, stored = _read(cur, symbol, interval, names)
                conn.rollback()  # no transaction left open while computing
                if not len(bars["ts"]) and not len(stored["ts"]):
                    report.results.append(SymbolResult(symbol, f"audit_{interval}", "skipped", reason="nothing stored"))
                    continue
                one = audit_series(bars, stored, features, names, tol)
                for m in [*one.mismatches, *([one.worst] if one.worst else [])]:
                    m.symbol, m.interval = symbol, interval
                _add(totals, one)
                failed = sorted({m.feature for m in one.mismatches})
                reason = (
                    f"{one.mismatching_rows} row(s) differ from the recompute in {', '.join(failed)}; "
                    f"worst {one.mismatches[0].describe()}"
                    if failed
                    else None
                )
                report.results.append(
                    SymbolResult(
                        symbol,
                        f"audit_{interval}",
                        "failed" if failed else "ok",
                        reason=reason,
                        fetched=len(bars["ts"]),
                        written=one.rows,
                        duration_s=time.perf_counter() - t0,
                    )
                )
    return _clean(
        {
            "symbols": symbols,
            "intervals": intervals,
            "columns": names,
            "tolerance": tol,
            **totals,
            "mismatches": sorted(totals["mismatches"], key=lambda m: -m["rel_diff"])[:KEPT_MISMATCHES],
            "passed": not totals["mismatching_rows"],
        }
    )  # strict JSON: the run's counts and feature_audits hold it


def _add(totals: dict, one: SeriesAudit) -> None:
    totals["rows"] += one.rows
    totals["values"] += one.values
    totals["mismatching_rows"] += one.mismatching_rows
    totals["mismatches"] += [m.__dict__ for m in one.mismatches]
    if one.worst is not None and (totals["worst"] is None or one.worst.rel_diff > totals["worst"]["rel_diff"]):
        totals["worst"] = dict(one.worst.__dict__)


def _record(report: RunReport) -> None:

    a = report.extra["audit"]
    worst = a["worst"]
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur, run_id=report.run_id)
        cur.execute(
            """INSERT INTO feature_audits (run_id, seconds, symbols, intervals, columns, rows_compared,
                   values_compared, tolerance, worst_rel_diff, worst, mismatching_rows, mismatches, passed)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                report.run_id,
                a["seconds"],
                a["symbols"],
                a["intervals"],
                a["columns"],
                a["rows"],
                a["values"],
                a["tolerance"],
                _finite(worst["rel_diff"]) if worst else None,
                json.dumps(worst) if worst else None,
                a["mismatching_rows"],
                json.dumps(a["mismatches"]),
                a["passed"],
            ),
        )


def _finite(x: float | str) -> float:
    """A relative difference as a number: NULL against a number ("inf") as the largest float."""
    return float("1e308") if isinstance(x, str) else x


def describe_diff(x: float | str) -> str:
    """A relative difference in a line: 3 significant digits, or "NULL vs a value"."""
    return "NULL vs a value" if isinstance(x, str) else f"{x:.3g}"


def _clean(value: Any) -> Any:
    """``value`` as strict JSON: an infinite difference (NULL against a number) as the string "inf"."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return "inf"
    return value
