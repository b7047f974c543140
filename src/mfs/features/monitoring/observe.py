"""What a features run does once its rows are written: the statistics of what it wrote, and a
drift check when a session closed since the last one. The run's report carries a summary in
``extra["monitoring"]`` (the artifact reads the rows back by run id)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mfs.config import get_config
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connection

if TYPE_CHECKING:
    from mfs.features.model import FeatureSet
    from mfs.runs import RunReport


def store_clock() -> dt.datetime:
    """Now on the store's clock (``MFS_CLOCK`` when pinned): a run's rows are those computed since."""
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur)
        cur.execute("SELECT mfs_now()")
        (now,) = cur.fetchone() or (None,)
        conn.rollback()
    return now


def after_run(
    report: RunReport, features: FeatureSet | None, since: dt.datetime, symbols: Sequence[str], intervals: Sequence[str]
) -> None:
    """Statistics (monitoring.stats) when the run wrote rows; the drift check of each interval
    (monitoring.drift) when its newest complete session has not been checked yet."""
    cfg = get_config().monitoring
    summary: dict = {}
    written = report.counts().written
    if cfg.stats and written:
        from mfs.features.monitoring import stats

        wrote = {r.stage.rpartition("_")[2] for r in report.results if r.written}  # features_1h, fill_1d, …
        summary["stats_rows"] = len(
            stats.record(report.run_id, symbols, [i for i in intervals if i in wrote], since, written)
        )
    due = [i for i in intervals if drift_due(i)] if cfg.drift else []
    if due:
        from mfs.features.monitoring import drift

        checked, drifting = 0, []
        for interval in due:
            if features is None:
                from mfs.features import definitions

                features = definitions.load()
            verdicts = drift.check(interval, features, run_id=report.run_id)
            checked += len(verdicts)
            drifting += [v for v in verdicts if v.drifting]
        summary["drift_checked"] = checked
        summary["drifting"] = drift.as_rows(drifting)
    report.extra["monitoring"] = summary


def drift_due(interval: str) -> bool:
    """Whether the newest session closed by the store's clock awaits its drift check of
    ``interval``: one probe of the calendar table (kept by ``mfs db up``) and one of the checks,
    no numpy — a run with nothing to do imports neither (the check runs once per session, after
    the first features run past the close)."""
    with connection() as conn, conn.cursor() as cur:
        set_write_context(cur)
        cur.execute(
            """SELECT NOT EXISTS (SELECT 1 FROM feature_drift_checks c
                                  WHERE c.interval = %s AND c.recent_to = s.session_date)
               FROM (SELECT session_date FROM market_sessions WHERE close_utc <= mfs_now()
                     ORDER BY day_start DESC LIMIT 1) s""",
            (interval,),
        )
        row = cur.fetchone()
        if row is None:  # no calendar table rows (a store `mfs db up` did not provision): the calendar
            from mfs.features.monitoring.drift import newest_complete_session

            day = newest_complete_session(cur)
            cur.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM feature_drift_checks WHERE interval = %s AND recent_to = %s)",
                (interval, day),
            )
            row = cur.fetchone() if day else (False,)
        conn.rollback()
    return bool(row and row[0])
