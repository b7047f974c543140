"""Shared by the point-in-time tests: runs at pinned moments of the store's clock, and queries.

A simulated moment ``t`` pins both clocks: the store's (``MFS_CLOCK``: every version written is
known from ``t``) and the synthetic market's (``asof=t``: the bar containing ``t`` is partial).
The schedule of a live deployment: collect at :00, features at :05 of each hour.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import pytest

from mfs.calendar import session_bounds
from mfs.features.run import compute
from mfs.ingest.run import backfill, collect
from mfs.runs import RunReport
from mfs.storage.connection import connect
from tests.fixtures.database import DATA_TABLES

CLOCK = "MFS_CLOCK"
FEATURES_LAG = pd.Timedelta(minutes=5)  # features run at :05, five minutes after the collect


def utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@contextmanager
def pinned(t) -> Iterator[pd.Timestamp]:
    """MFS_CLOCK = ``t`` for the block (restored after): the store records ``t`` for every write."""
    t = utc(t)
    old = os.environ.get(CLOCK)
    os.environ[CLOCK] = t.isoformat()
    try:
        yield t
    finally:
        if old is None:
            os.environ.pop(CLOCK, None)
        else:
            os.environ[CLOCK] = old


class Runs:
    """Collect and features runs of ``symbols`` at simulated moments, with the offline Yahoo
    ``session_factory`` (the ``fake_yahoo`` fixture, or ``synthetic_session``) and ``faults``
    (changed between runs to simulate events: a split, a correction, a delisting)."""

    def __init__(self, session_factory: Callable, symbols: Sequence[str], faults: dict | None = None):
        self.session_factory = session_factory
        self.symbols = list(symbols)
        self.faults: dict = dict(faults or {})
        self.reports: list[RunReport] = []

    def _session(self, t: pd.Timestamp):
        return self.session_factory(asof=t, faults=dict(self.faults))

    def backfill(self, t, days: int) -> RunReport:
        with pinned(t) as at:
            report = backfill(self.symbols, days=days, session=self._session(at), raise_on_failure=False)
        self.reports.append(report)
        return report

    def collect(self, t, interval: str | None = None) -> RunReport:
        with pinned(t) as at:
            report = collect(self.symbols, interval, session=self._session(at), raise_on_failure=False)
        self.reports.append(report)
        return report

    def features(self, t, interval: str | None = None) -> RunReport:
        with pinned(t):
            report = compute(self.symbols, interval, raise_on_failure=False)
        self.reports.append(report)
        return report

    def hour(self, t) -> pd.Timestamp:
        """Collect at ``t`` (an :00), features five minutes later; returns the features moment."""
        t = utc(t)
        self.collect(t)
        self.features(t + FEATURES_LAG)
        return t + FEATURES_LAG


def run_hours(day) -> list[pd.Timestamp]:
    """The :00 moments of a session at which the hourly schedule runs: every whole hour after the
    open up to and including the first one at or after the close (the run that finalises the last
    bar, e.g. 16:00 New York)."""
    open_, close = session_bounds(day)
    first = open_.ceil("h")
    return list(pd.date_range(first, close.ceil("h"), freq="h"))


def query(conn, statement: str, *args) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement, args or None)
        rows = cur.fetchall()
    conn.commit()
    return rows


def scalar(conn, statement: str, *args):
    return query(conn, statement, *args)[0][0]


@contextmanager
def module_store(url: str) -> Iterator:
    """A connection to the session database emptied for a module-scoped store (the `db` fixture
    empties it per test: tests sharing the store must run one after the other, see ``check_store``)."""
    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        present = {r[0] for r in cur.fetchall()}
        cur.execute(f"TRUNCATE {', '.join(t for t in DATA_TABLES if t in present)} CASCADE")
    conn.commit()
    try:
        yield conn
    finally:
        conn.close()


def check_store(conn, reports: Sequence[RunReport]) -> None:
    """Fail clearly when a test in between emptied a module-scoped store."""
    last = reports[-1].run_id
    if not query(conn, "SELECT 1 FROM pipeline_runs WHERE run_id = %s", last):
        pytest.fail("the module's store was emptied by another test: keep the tests sharing it adjacent")


def table_columns(conn, table: str) -> list[str]:
    return [
        r[0]
        for r in query(
            conn,
            """SELECT column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position""",
            table,
        )
    ]


# What features_asof / bars_asof return besides the base table's columns, in order.
ASOF_HEAD = ["entity", "at", "known_at", "known_from", "complete", "known_to", "reason", "run_id"]
# The head columns that describe the version's replacement: for a known_at in the past they say
# what happened after it (see test_point_in_time's strict checksum).
REPLACEMENT = ("known_to", "reason", "run_id")
BASE_TABLE = {"features_asof": "features", "bars_asof": "market_data"}


def _arguments(known_at, bar_interval, tolerance, mode) -> tuple[str, list]:
    names, values = [], []
    for name, value, cast in (
        ("known_at", known_at, "timestamptz"),
        ("bar_interval", bar_interval, "text"),
        ("tolerance", tolerance, "interval"),
        ("mode", mode, "text"),
    ):
        if value is not None:
            names.append(f", {name} => %s::{cast}")
            values.append(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
    return "".join(names), values


def asof_rows(conn, function: str, symbols, ats, *, known_at=None, bar_interval=None, tolerance=None, mode=None):
    """``function`` (features_asof / bars_asof) for the pairs (symbols[i], ats[i]), as dicts by
    column name, in entity order. Arguments left None take the function's defaults."""
    extra, values = _arguments(known_at, bar_interval, tolerance, mode)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT * FROM {function}(%s::text[], %s::timestamptz[]{extra}) ORDER BY entity",
            [list(symbols), [utc(a).to_pydatetime() for a in ats], *values],
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows


def asof_checksum(conn, function: str, symbols, ats, *, known_at=None, strict: bool = False, **kwargs) -> tuple:
    """(md5 over the result rows as text in entity order, row count). Not ``strict``: without
    REPLACEMENT, the columns telling when and why the version returned was replaced later."""
    columns = table_columns(conn, BASE_TABLE[function])
    head = ASOF_HEAD if strict else [c for c in ASOF_HEAD if c not in REPLACEMENT]
    chosen = ", ".join(f'r."{c}"' for c in head + columns)  # names from information_schema
    extra, values = _arguments(known_at, kwargs.get("bar_interval"), kwargs.get("tolerance"), kwargs.get("mode"))
    with conn.cursor() as cur:
        cur.execute(
            f"""SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x.entity), '')), count(*)
                FROM (SELECT {chosen} FROM {function}(%s::text[], %s::timestamptz[]{extra}) r) x""",
            [list(symbols), [utc(a).to_pydatetime() for a in ats], *values],
        )
        result = cur.fetchone()
    conn.commit()
    return result
