"""Quality findings and corporate actions into the store, in the transaction of the bars they
belong to; and the run-level cross-checks that need what is stored (``mfs.ingest.quality`` has
the checks of one served series).

- Findings become rows of ``anomalies`` (one per bar and kind: a re-run records nothing twice).
- A bar held back that the store already holds (it was the newest bar of an earlier run, stored
  at once, and the next bar showed it reverted) is deleted from ``market_data``: its stored
  version is kept as a revision with reason ``held_back``, so a replay still shows what was
  served, and the ``level_shift`` recorded for it is retracted.
- Every run re-examines the held bars of its symbols: one the source now serves so that it
  passes every check is stored by the same upsert as the others and its anomaly resolved; one
  the source no longer serves at all is resolved as such.
- Splits and dividends are versioned in ``corporate_actions`` (a changed value closes the current
  version and adds one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from psycopg2.extras import Json, execute_values

from mfs.config import QualityConfig
from mfs.ingest.validate import Validated
from mfs.runs import RunReport
from mfs.storage.types import Cursor

_INSERT = """
INSERT INTO anomalies AS a (symbol, interval, ts, kind, severity, held, detail, bar, run_id) VALUES %s
ON CONFLICT (symbol, interval, ts, kind) DO UPDATE
  SET resolved_at = NULL, resolution = NULL, held = true, bar = EXCLUDED.bar, run_id = EXCLUDED.run_id,
      detected_at = mfs_now(), detail = EXCLUDED.detail
  WHERE a.resolved_at IS NOT NULL AND EXCLUDED.held
RETURNING symbol, interval, ts, kind, severity, held, detail"""


def _bar_values(held: pd.DataFrame | None) -> dict[pd.Timestamp, dict[str, Any]]:
    if held is None:
        return {}
    out = {}
    for row in held.itertuples(index=False):
        values = row._asdict()
        ts = pd.Timestamp(values.pop("ts"))
        # jsonb has no NaN (adj_close of an hourly bar) and no numpy integer
        out[ts] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
        out[ts] |= {"ts": ts.isoformat(), "volume": int(values["volume"])}
    return out


def record_findings(cur: Cursor, interval: str, run_id: str, items: Sequence[tuple[str, Validated]]) -> list[tuple]:
    """Insert the findings of a batch's series; returns the rows new to the store."""
    rows = []
    for symbol, checked in items:
        bars = _bar_values(checked.held)
        for f in checked.findings:
            bar = Json(bars[f.ts]) if f.held else None
            rows.append((symbol, interval, f.ts.to_pydatetime(), f.kind, f.severity, f.held, f.detail, bar, run_id))
    if not rows:
        return []
    return execute_values(cur, _INSERT, rows, fetch=True)


def withdraw_held(cur: Cursor, interval: str, items: Sequence[tuple[str, Validated]]) -> dict[str, datetime]:
    """Delete from ``market_data`` the bars held back this run that an earlier run stored, and
    retract their ``level_shift``; returns per symbol the earliest bar deleted (the features
    must be recomputed from there)."""
    keys = [
        (symbol, ts.to_pydatetime())
        for symbol, checked in items
        if checked.held is not None
        for ts in pd.DatetimeIndex(checked.held["ts"])
    ]
    if not keys:
        return {}
    symbols, stamps = [k[0] for k in keys], [k[1] for k in keys]
    cur.execute("SELECT set_config('mfs.revision_reason', 'held_back', true)")
    cur.execute(
        """DELETE FROM market_data m USING unnest(%s::text[], %s::timestamptz[]) AS h(symbol, ts)
           WHERE m.symbol = h.symbol AND m.interval = %s AND m.ts = h.ts AND m.ts BETWEEN %s AND %s
           RETURNING m.symbol, m.ts""",
        # The bounds (constants) keep the chunks outside the held bars' span out of the plan.
        (symbols, stamps, interval, min(stamps), max(stamps)),
    )
    deleted = cur.fetchall()
    cur.execute("SELECT set_config('mfs.revision_reason', '', true)")
    cur.execute(
        """UPDATE anomalies a SET resolved_at = mfs_now(),
                  resolution = 'retracted: the next bar returned to the level before it (held back as a spike)'
           FROM unnest(%s::text[], %s::timestamptz[]) AS h(symbol, ts)
           WHERE a.symbol = h.symbol AND a.interval = %s AND a.ts = h.ts AND a.kind = 'level_shift'
             AND a.resolved_at IS NULL""",
        (symbols, stamps, interval),
    )
    earliest: dict[str, datetime] = {}
    for symbol, ts in deleted:
        earliest[symbol] = min(ts, earliest.get(symbol, ts))
    return earliest


def reexamine_held(
    cur: Cursor, interval: str, items: Sequence[tuple[str, Validated]], only: Collection[str] | None
) -> int:
    """Resolve the open held anomalies of these series that this run's answer clears: the bar is
    served and passed every check (it is stored now), or it is not served any more. ``only``:
    the symbols known to have held bars (None: look for every symbol). Returns how many."""
    resolved = 0
    if only is None:
        cur.execute(
            "SELECT DISTINCT symbol FROM anomalies WHERE held AND resolved_at IS NULL AND interval = %s"
            " AND symbol = ANY(%s)",
            (interval, [symbol for symbol, _ in items]),
        )
        only = {symbol for (symbol,) in cur.fetchall()}
    for symbol, checked in items:
        if symbol not in only or checked.served is None:
            continue
        still = [] if checked.held is None else [t.to_pydatetime() for t in pd.DatetimeIndex(checked.held["ts"])]
        kept = [t.to_pydatetime() for t in pd.DatetimeIndex(checked.good["ts"])]
        first, last = (t.to_pydatetime() for t in checked.served)
        cur.execute(
            """UPDATE anomalies SET resolved_at = mfs_now(),
                      resolution = CASE WHEN NOT ts = ANY(%(kept)s::timestamptz[])
                                             THEN 'the source no longer serves this bar'
                                        WHEN kind = 'level_shift'
                                             THEN 'confirmed: a later bar holds the new level; stored'
                                        ELSE 'cleared: the bar as served now passes every check; stored' END
               WHERE symbol = %(symbol)s AND interval = %(interval)s AND held AND resolved_at IS NULL
                 AND ts BETWEEN %(first)s AND %(last)s AND NOT ts = ANY(%(still)s::timestamptz[])""",
            {"kept": kept, "symbol": symbol, "interval": interval, "first": first, "last": last, "still": still},
        )
        resolved += cur.rowcount
    return resolved


def record_actions(cur: Cursor, items: Sequence[tuple[str, Validated]], source: str, run_id: str) -> list[tuple]:
    """Upsert the splits and dividends served with a batch's series as versions; returns the
    versions new to the store."""
    frames = [c.actions.assign(symbol=s) for s, c in items if c.actions is not None and not c.actions.empty]
    if not frames:
        return []
    actions = pd.concat(frames, ignore_index=True).drop_duplicates(["symbol", "kind", "ex_date"], keep="last")
    args = (
        list(actions["symbol"]),
        list(actions["kind"]),
        [pd.Timestamp(d).date() for d in actions["ex_date"]],
        [float(v) for v in actions["value"]],
    )
    cur.execute(
        """UPDATE corporate_actions c SET known_to = mfs_now()
           FROM unnest(%s::text[], %s::text[], %s::date[], %s::float8[]) AS i(symbol, kind, ex_date, value)
           WHERE c.symbol = i.symbol AND c.kind = i.kind AND c.ex_date = i.ex_date AND c.known_to = 'infinity'
             AND abs(c.value - i.value) > 1e-9 * i.value AND c.known_from < mfs_now()""",
        args,
    )
    cur.execute(
        """INSERT INTO corporate_actions (symbol, kind, ex_date, value, source, run_id)
           SELECT i.symbol, i.kind, i.ex_date, i.value, %s, %s
           FROM unnest(%s::text[], %s::text[], %s::date[], %s::float8[]) AS i(symbol, kind, ex_date, value)
           WHERE NOT EXISTS (SELECT FROM corporate_actions c WHERE c.symbol = i.symbol AND c.kind = i.kind
                               AND c.ex_date = i.ex_date AND c.known_to = 'infinity')
           RETURNING symbol, kind, ex_date, value""",
        (source, run_id, *args),
    )
    return cur.fetchall()


_REVISED = """
INSERT INTO anomalies (symbol, interval, ts, kind, severity, detail, run_id)
SELECT r.symbol, r.interval, r.ts, 'unexplained_revision', 'warning',
       format('Yahoo revised the close from %%s to %%s (%%s%%%%) with no split or dividend to explain it',
              r.close, m.close, round((100 * (m.close / r.close - 1))::numeric, 2)),
       %(run_id)s
FROM market_data_revisions r
JOIN market_data m ON m.symbol = r.symbol AND m.interval = r.interval AND m.ts = r.ts
WHERE r.symbol = ANY(%(symbols)s) AND r.interval = %(interval)s AND r.ts >= %(since)s
  AND r.run_id = %(run_id)s AND r.reason = 'correction' AND abs(m.close / r.close - 1) > %(tolerance)s
ON CONFLICT DO NOTHING
RETURNING symbol, interval, ts, kind, severity, false, detail"""

# Hourly bars of a complete session against its daily bar. Volume only where every hourly bar of
# the session is stored: a missing bar is a gap of its own.
_DAILY = """
WITH hours AS (
    SELECT m.symbol, s.day_start, s.close_utc, max(m.high) AS high, min(m.low) AS low,
           sum(m.volume) AS volume, count(*) AS bars,
           max(ceil(extract(epoch FROM s.close_utc - s.open_utc) / 3600)) AS expected
    FROM market_data m
    JOIN market_sessions s ON s.day_start <= m.ts AND m.ts < s.day_end
    WHERE m.symbol = ANY(%(symbols)s) AND m.interval = '1h' AND m.ts >= %(since)s AND s.close_utc <= %(asof)s
    GROUP BY m.symbol, s.day_start, s.close_utc)
INSERT INTO anomalies (symbol, interval, ts, kind, severity, detail, run_id)
SELECT d.symbol, '1d', d.ts, 'daily_mismatch', 'warning',
       concat_ws('; ',
         CASE WHEN h.high > d.high * (1 + %(range)s) OR h.low < d.low * (1 - %(range)s)
              THEN format('hourly range %%s-%%s outside the daily bar''s %%s-%%s', h.low, h.high, d.low, d.high) END,
         CASE WHEN h.bars = h.expected AND abs(h.volume::float8 / nullif(d.volume, 0) - 1) > %(volume)s
              THEN format('hourly volume %%s against the daily %%s', h.volume, d.volume) END),
       %(run_id)s
FROM hours h
JOIN market_data d ON d.symbol = h.symbol AND d.interval = '1d' AND d.ts = h.day_start
WHERE h.high > d.high * (1 + %(range)s) OR h.low < d.low * (1 - %(range)s)
   OR (h.bars = h.expected AND abs(h.volume::float8 / nullif(d.volume, 0) - 1) > %(volume)s)
ON CONFLICT DO NOTHING
RETURNING symbol, interval, ts, kind, severity, false, detail"""


def cross_check(
    cur: Cursor,
    run_id: str,
    symbols: list[str],
    intervals: Sequence[str],
    since: datetime,
    asof: datetime,
    rules: QualityConfig,
) -> list[tuple]:
    """The checks that need what is stored, after a run wrote its bars: revised closes no action
    explains (every interval), hourly bars against their session's daily bar (when the run did
    both). Returns the anomalies new to the store."""
    found: list[tuple] = []
    if not rules.enabled or not symbols:
        return found
    params = {"run_id": run_id, "symbols": symbols, "since": since, "asof": asof, "tolerance": rules.revision_tolerance}
    for interval in intervals:
        cur.execute(_REVISED, {**params, "interval": interval})
        found += cur.fetchall()
    if {"1h", "1d"} <= set(intervals):
        cur.execute(_DAILY, {**params, "range": rules.daily_range_tolerance, "volume": rules.daily_volume_tolerance})
        found += cur.fetchall()
    return found


def summarize(report: RunReport, new: Sequence[tuple], resolved: int = 0, actions: int = 0) -> None:
    """The run's anomaly summary in ``report.extra['anomalies']`` (and a note when any is high)."""
    if not new and not resolved and not actions and "anomalies" not in report.extra:
        return
    summary = report.extra.setdefault(
        "anomalies", {"new": 0, "high": 0, "held_back": 0, "resolved": 0, "actions": 0, "by_kind": {}, "list": []}
    )
    kinds = Counter(summary["by_kind"])
    for symbol, interval, ts, kind, severity, held, detail in new:
        summary["new"] += 1
        summary["high"] += severity == "high"
        summary["held_back"] += bool(held)
        kinds[kind] += 1
        if len(summary["list"]) < 50:
            summary["list"].append(
                {
                    "symbol": symbol,
                    "interval": interval,
                    "ts": pd.Timestamp(ts).isoformat(),
                    "kind": kind,
                    "severity": severity,
                    "held": bool(held),
                    "detail": detail,
                }
            )
    summary["by_kind"] = dict(kinds)
    summary["resolved"] += resolved
    summary["actions"] += actions


def log_fields(report: RunReport) -> dict[str, Any]:
    """The anomaly summary as a log line's fields: counts and the first few in words."""
    summary = report.extra.get("anomalies") or {}
    first = [f"{a['symbol']} {a['interval']} {a['ts']} {a['kind']}" for a in summary.get("list", [])[:5]]
    return {
        "new": summary.get("new", 0),
        "high_severity": summary.get("high", 0),
        "held_back": summary.get("held_back", 0),
        "kinds": summary.get("by_kind", {}),
        "first": first,
    }
