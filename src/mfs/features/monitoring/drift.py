"""Drift: each scale-free feature's recent sessions against its reference sessions, per symbol
group, once per completed session (``feature_drift_checks``; the ``feature_drift`` view serves the
newest verdicts).

Windows are counted in NYSE sessions, not wall-clock days: the recent window is the last
``monitoring.recent_sessions`` complete sessions, the reference the ``reference_sessions`` before
them. The distance is the PSI (``mfs.features.monitoring.psi``), read off per-session histograms
(``histograms``, stored by ``session_counts``: a check reads only the sessions not counted yet
from ``features``). A feature drifts when its PSI is
beyond ``psi_threshold`` AND beyond ``noise_factor`` × the PSI that windows of the recent window's
length cut from the reference show against the rest of it: autocorrelated indicators (ADX, RSI)
move that much in an unchanged market (measured: docs/features.md "Monitoring").

Only values of a feature's current registered version are compared: a changed definition is
recomputed over the whole history before its version is marked filled, and until then its verdict
is ``restarting`` (nothing compared) — the reference starts again from the new definition's values
(counted anew: counts are kept per version), so a new definition is never reported as drift.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from psycopg2.extras import execute_values

from mfs import calendar
from mfs.config import get_config
from mfs.features import engine
from mfs.features.model import BUILTIN, FeatureSet
from mfs.features.monitoring.histograms import Histograms, largest_block_psi_counts, psi_counts
from mfs.features.monitoring.psi import scale_free
from mfs.features.monitoring.session_counts import load_window, prune, session_histograms
from mfs.market import NY
from mfs.sources.synthetic import synthetic_bars
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection
from mfs.storage.types import Cursor, one_row

ALL = "all"
NOISE_FACTOR = 3.0  # see the module docstring: 3 × the reference's own noise (2 flagged clean ADX windows)


@dataclass(frozen=True)
class Verdict:
    interval: str
    symbol_group: str
    feature: str
    version: str | None
    recent_from: dt.date
    recent_to: dt.date
    reference_from: dt.date
    reference_to: dt.date
    recent_values: int
    reference_values: int
    psi: float | None
    threshold: float
    status: str  # ok, drift, too_few_values, restarting

    @property
    def drifting(self) -> bool:
        return self.status == "drift"


def judge(h: Histograms, sessions: Sequence[np.datetime64], recent_len: int, floor: float) -> tuple[float, float]:
    """(PSI of the last ``recent_len`` of ``sessions`` against those before them, threshold):
    ``floor`` or NOISE_FACTOR × the largest PSI of a ``recent_len``-session block of the reference
    against the rest of it, whichever is larger."""
    ref_last, recent_from = sessions[-recent_len - 1], sessions[-recent_len]
    value = psi_counts(h.total(sessions[0], ref_last), h.total(recent_from, sessions[-1]))
    noise = largest_block_psi_counts(h, sessions[0], ref_last, recent_len)
    return value, max(floor, NOISE_FACTOR * noise)


def verdicts(
    histograms: dict[str, Histograms],
    sessions: Sequence[np.datetime64],
    interval: str,
    group: str,
    versions: dict[str, str | None],
    restarting: Sequence[str],
) -> list[Verdict]:
    """The verdict of every feature of ``histograms`` and of ``restarting`` (nothing compared)
    whose recent window is the last recent_sessions of ``sessions`` (the reference: the sessions
    before them)."""
    cfg = get_config().monitoring
    recent_len = cfg.recent_sessions.get(interval, 5)
    ref_len = len(sessions) - recent_len
    recent_from, reference_from = sessions[ref_len], sessions[0]
    out = []
    for feature in [*histograms, *restarting]:
        n_ref = n_recent = 0
        value, threshold, status = None, cfg.psi_threshold.get(interval, 2.0), "restarting"
        if (h := histograms.get(feature)) is not None:
            n_ref = int(h.total(reference_from, sessions[ref_len - 1]).sum())
            n_recent = int(h.total(recent_from, sessions[-1]).sum())
            status = "too_few_values"
            if min(n_ref, n_recent) >= cfg.min_values:
                value, threshold = judge(h, sessions, recent_len, threshold)
                status = "drift" if value > threshold else "ok"
        out.append(
            Verdict(
                interval,
                group,
                feature,
                versions.get(feature),
                _date(recent_from),
                _date(sessions[-1]),
                _date(reference_from),
                _date(sessions[ref_len - 1]),
                n_recent,
                n_ref,
                value,
                threshold,
                status,
            )
        )
    return out


def _date(day: np.datetime64) -> dt.date:
    return dt.date.fromisoformat(str(day)[:10])


_MONITORED: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}


def monitored(features: FeatureSet) -> list[str]:
    """The scale-free features of ``features`` (``psi.scale_free`` on half a year of synthetic
    hourly bars), calendar columns aside (their distribution is the calendar's); once per set of
    definition versions in a process."""
    key = tuple((d.name, d.version) for d in features.definitions)
    if key not in _MONITORED:
        _MONITORED[key] = _scale_free(features)
    return list(_MONITORED[key])


def _scale_free(features: FeatureSet) -> tuple[str, ...]:

    bars = synthetic_bars("MFSPROBE", "1h", "2025-01-01", "2025-07-01", asof=pd.Timestamp("2025-07-01", tz="UTC"))
    ts = pd.DatetimeIndex(bars["ts"])
    prices = [bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    values = engine.compute(ts, *prices, definitions=features.definitions)
    scaled = engine.compute(ts, *(p * 10 for p in prices), definitions=features.definitions)
    names = [n for n in features.names if n not in BUILTIN]
    return tuple(scale_free(values, scaled, names))


def _store_now(cur: Cursor) -> pd.Timestamp:
    set_write_context(cur)
    cur.execute("SELECT mfs_now()")
    return pd.Timestamp(one_row(cur)[0]).tz_convert("UTC")


def _sessions(now: pd.Timestamp, interval: str, at: dt.date | None, n: int | None = None) -> list[np.datetime64]:
    """The ``n`` sessions (default: reference + recent) ending at ``at`` or at the newest session
    closed by ``now``, oldest first (NYSE calendar)."""
    cfg = get_config().monitoring
    n = n or cfg.recent_sessions.get(interval, 5) + cfg.reference_sessions.get(interval, 60)
    last = pd.Timestamp(at) if at is not None else now.tz_convert(NY).tz_localize(None).normalize()
    days = calendar.sessions(last - pd.Timedelta(days=2 * n + 10), last)
    if len(days) and calendar.session_bounds(days[-1])[1] > now:
        days = days[:-1]  # not over yet
    return [np.datetime64(d.date(), "D") for d in days[-n:]]


def newest_complete_session(cur: Cursor) -> dt.date | None:
    days = _sessions(_store_now(cur), "1d", None, n=1)
    return _date(days[-1]) if days else None


def _versions(cur: Cursor) -> tuple[dict[str, str | None], set[str]]:
    """Live registered versions, and the features whose version awaits its fill."""
    cur.execute(
        """SELECT name, version, filled_at IS NULL FROM feature_registry
           WHERE superseded_at IS NULL AND pruned_at IS NULL AND retired_at IS NULL"""
    )
    rows = cur.fetchall()
    return {n: v for n, v, _ in rows}, {n for n, _, unfilled in rows if unfilled}


def check(
    interval: str,
    features: FeatureSet,
    *,
    run_id: str | None = None,
    at: dt.date | None = None,
    force: bool = False,
) -> list[Verdict]:
    """Check every monitored feature of ``interval`` for drift, per symbol group, for the
    sessions ending at ``at`` (default: the newest complete session) and record the verdicts.
    Once per session: nothing (an empty list) when that session was checked already, unless
    ``force``; nothing when the calendar has too few sessions."""
    cfg = get_config().monitoring
    names = monitored(features)
    with connection() as conn, conn.cursor() as cur:
        sessions = _sessions(_store_now(cur), interval, at)
        set_write_context(cur, run_id=run_id)
        if not names or len(sessions) <= cfg.recent_sessions.get(interval, 5):
            return []
        if not force:
            cur.execute(
                "SELECT 1 FROM feature_drift_checks WHERE interval = %s AND recent_to = %s LIMIT 1",
                (interval, str(sessions[-1])),
            )
            if cur.fetchone():
                return []
        versions, restarting = _versions(cur)
        counted = {n: versions.get(n) or "" for n in names if n not in restarting}
        days = np.array(sessions, dtype="datetime64[D]")
        out = []
        for group, members in {ALL: None, **cfg.groups}.items():
            members = list(members) if members else None
            histograms = session_histograms(cur, interval, group, members, counted, days, recount=force)
            out += verdicts(histograms, sessions, interval, group, versions, [n for n in names if n in restarting])
        if at is None:
            prune(cur, interval, days[0])
        _record(cur, run_id, out)
    return out


def _record(cur: Cursor, run_id: str | None, out: list[Verdict]) -> None:
    """Insert the verdicts; a check forced again at the same moment (a pinned clock) replaces them."""

    rows = [
        (
            *(run_id, v.interval, v.symbol_group, v.feature, v.version, v.recent_from, v.recent_to, v.reference_from),
            *(v.reference_to, v.recent_values, v.reference_values, v.psi, v.threshold, v.status),
        )
        for v in out
    ]
    execute_values(
        cur,
        """INSERT INTO feature_drift_checks (run_id, interval, symbol_group, feature, version, recent_from, recent_to,
               reference_from, reference_to, recent_values, reference_values, psi, threshold, status) VALUES %s
           ON CONFLICT (interval, symbol_group, feature, recent_to, checked_at) DO UPDATE SET
               run_id = EXCLUDED.run_id, version = EXCLUDED.version, recent_from = EXCLUDED.recent_from,
               reference_from = EXCLUDED.reference_from, reference_to = EXCLUDED.reference_to,
               recent_values = EXCLUDED.recent_values, reference_values = EXCLUDED.reference_values,
               psi = EXCLUDED.psi, threshold = EXCLUDED.threshold, status = EXCLUDED.status""",
        rows,
    )


def replay(
    interval: str, features: FeatureSet, first: dt.date, last: dt.date, symbols: Sequence[str] | None = None
) -> dict[dt.date, list[Verdict]]:
    """The verdicts a check of ``symbols`` (default: all) would have given at the end of every
    session from ``first`` to ``last`` (nothing recorded): how often an unchanged market would
    alert (the false-positive rate) and how soon a change is flagged. One read of the whole span."""
    cfg = get_config().monitoring
    n = cfg.recent_sessions.get(interval, 5) + cfg.reference_sessions.get(interval, 60)
    names = monitored(features)
    before = _sessions(pd.Timestamp.max.tz_localize("UTC"), interval, first - dt.timedelta(days=1), n=n - 1)
    span = before + [np.datetime64(d.date(), "D") for d in calendar.sessions(first, last)]
    with connection() as conn, conn.cursor() as cur:
        versions, restarting = _versions(cur)
        counted = [name for name in names if name not in restarting]
        window = load_window(cur, interval, counted, span[0], span[-1], list(symbols) if symbols else None)
    histograms = window.histograms(np.array(span, dtype="datetime64[D]"))
    restarted = [name for name in names if name in restarting]
    return {
        _date(span[end - 1]): verdicts(histograms, span[end - n : end], interval, ALL, versions, restarted)
        for end in range(n, len(span) + 1)
    }


def as_rows(out: Sequence[Verdict]) -> list[dict[str, Any]]:
    """Verdicts as JSON-ready rows (the run's counts, ``--json``): dates as ISO text."""
    return [
        {k: x.isoformat() if isinstance(x, dt.date) else x for k, x in asdict(v).items()} | {"drifting": v.drifting}
        for v in out
    ]
