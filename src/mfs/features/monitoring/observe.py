"""What a features run does once its rows are written: the statistics of what it wrote, and a
drift check when a session closed since the last one. The run's report carries a summary in
``extra["monitoring"]`` (the artifact reads the rows back by run id)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mfs.config import get_config
from mfs.features.monitoring import stats
from mfs.storage.clock import pinned_clock
from mfs.storage.connection import connection
from mfs.storage.types import Cursor, one_row

if TYPE_CHECKING:
    from mfs.features.model import FeatureSet
    from mfs.runs import RunReport


@dataclass(frozen=True)
class Probe:
    """What monitoring needs to know as a features run starts: now on the store's clock (the run's
    rows are those computed from then on) and the intervals whose newest closed session awaits its
    drift check (the check runs after the run that started past the close)."""

    since: dt.datetime
    drift_due: tuple[str, ...] | None  # None: the calendar table is empty (decided after the run)


# One statement on the run's own transaction: a separate connection per probe (the clock, then one
# drift-due probe per interval) made a no-op `mfs features` 1.08× slower (0.461 vs 0.428 s, 2026-12-07).
# The clock is the pinned one or the server's now() — what mfs_now() reads once set_write_context ran.
_PROBE = """WITH clock AS (SELECT coalesce(nullif(%(clock)s, '')::timestamptz, now()) AS now),
                newest AS (SELECT m.session_date FROM market_sessions m, clock
                           WHERE m.close_utc <= clock.now ORDER BY m.day_start DESC LIMIT 1)
            SELECT (SELECT now FROM clock), (SELECT session_date FROM newest),
                   ARRAY(SELECT DISTINCT c.interval FROM feature_drift_checks c
                         WHERE c.interval = ANY(%(intervals)s) AND c.recent_to = (SELECT session_date FROM newest))"""


def probe(cur: Cursor, intervals: Sequence[str]) -> Probe:
    """The run's :class:`Probe`, in one statement on ``cur`` (the run's transaction): one probe of
    the calendar table (kept by ``mfs db up``) and one of the checks — no numpy, so a run with
    nothing to do imports neither."""
    cur.execute(_PROBE, {"clock": pinned_clock() or "", "intervals": list(intervals)})
    now, newest, checked = one_row(cur)
    if not get_config().monitoring.drift:
        return Probe(now, ())
    if newest is None:  # no calendar rows (a store `mfs db up` did not provision): decided after the run
        return Probe(now, None)
    return Probe(now, tuple(i for i in intervals if i not in checked))


def _due_by_the_calendar(intervals: Sequence[str]) -> tuple[str, ...]:
    """The intervals whose newest closed session awaits its drift check, by the NYSE calendar
    itself (pandas, exchange_calendars): for a store without calendar table rows, and only after a
    run that wrote rows (its workers' results loaded pandas already; a no-op run stays light)."""
    # deferred (as below): drift brings numpy, pandas and the calendar
    from mfs.features.monitoring.drift import newest_complete_session

    with connection() as conn, conn.cursor() as cur:
        newest = newest_complete_session(cur)
        cur.execute(
            "SELECT ARRAY(SELECT DISTINCT interval FROM feature_drift_checks "
            "WHERE interval = ANY(%s) AND recent_to = %s)",
            (list(intervals), newest),
        )
        (checked,) = one_row(cur)
        conn.rollback()
    return tuple(i for i in intervals if newest is not None and i not in checked)


def _written_from(by_stage: dict[str, str | None], intervals: Sequence[str]) -> dict[str, str | None]:
    """Per interval, the earliest bar its jobs wrote from (``features_<i>``, ``fill_<i>``, as the
    pool records them), None when one of them does not say."""
    out: dict[str, str | None] = {}
    for interval in intervals:
        starts = [start for stage, start in by_stage.items() if stage.rpartition("_")[2] == interval]
        out[interval] = None if not starts or None in starts else min(filter(None, starts))
    return out


def after_run(
    report: RunReport, features: FeatureSet | None, started: Probe, symbols: Sequence[str], intervals: Sequence[str]
) -> None:
    """Statistics (monitoring.stats) when the run wrote rows; the drift check of each interval
    (monitoring.drift) whose newest complete session awaited its check as the run started (with
    no calendar table rows: by the calendar itself, after a run that wrote rows)."""
    cfg = get_config().monitoring
    summary: dict = {}
    written = report.counts().written
    began = time.perf_counter()
    if cfg.stats and written:
        wrote = {r.stage.rpartition("_")[2] for r in report.results if r.written}  # features_1h, fill_1d, …
        summary["stats_rows"] = len(
            stats.record(
                report.run_id,
                symbols,
                [i for i in intervals if i in wrote],
                started.since,
                written,
                _written_from(report.extra.get("written_from") or {}, intervals),
            )
        )
        summary["stats_seconds"] = round(time.perf_counter() - began, 3)  # `mfs bench` sets them beside the run's
    due = started.drift_due if started.drift_due is not None else _due_by_the_calendar(intervals) if written else ()
    if due:
        # deferred: numpy, pandas and the calendar, ~460 ms over mfs.features.run (-X importtime,
        # 2026-12-08), which a run that checks no drift (a no-op run above all) does not pay
        from mfs.features.monitoring import drift

        began = time.perf_counter()
        checked, drifting = 0, []
        for interval in due:
            if features is None:
                # deferred: the definitions' probes and TA-Lib, ~340 ms (-X importtime, 2026-12-08)
                from mfs.features import definitions

                features = definitions.load()
            verdicts = drift.check(interval, features, run_id=report.run_id)
            checked += len(verdicts)
            drifting += [v for v in verdicts if v.drifting]
        summary["drift_checked"] = checked
        summary["drifting"] = drift.as_rows(drifting)
        summary["drift_seconds"] = round(time.perf_counter() - began, 3)
    report.extra["monitoring"] = summary
