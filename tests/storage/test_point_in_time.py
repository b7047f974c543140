"""Acceptance of the point-in-time issue: features_asof / bars_asof (sql/functions/asof.sql)
over stores written by the real collect and features runs at pinned moments (collect at :00,
features at :05 — tests/storage/pit_helpers.py), with the offline Yahoo's events: partial bars, a
split, corrected bars, a delisting. The semantics: docs/point-in-time.md.

The two module-scoped stores (the reproduction, the property history) are built once each; the
tests sharing one run one after the other (``check_store`` fails clearly otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import psycopg2
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mfs.sources.fake_yahoo import DEFAULT_UNIVERSE, synthetic_session
from mfs.storage.sessions import sync_sessions
from tests.storage.pit_helpers import (
    FEATURES_LAG,
    Runs,
    asof_checksum,
    asof_rows,
    check_store,
    module_store,
    query,
    run_hours,
    table_columns,
    utc,
)

# The size: 50 symbols × 30 days of hourly moments (~45 s to build on 2 cores). PEP splits,
# AAPL and MSFT get a bar corrected, KO is delisted.
SYMBOLS = DEFAULT_UNIVERSE[:50]
FUNCTIONS = ("features_asof", "bars_asof")
MICRO = pd.Timedelta(microseconds=1)
TODAY = utc("2025-12-02")  # after every run of every store here: "today's values"
INFINITY = utc("9999-12-31 23:59:59.999999")  # 'infinity'::timestamptz as psycopg2 reads it


def training_grid(symbols, end: pd.Timestamp, days: int) -> tuple[list[str], list[pd.Timestamp]]:
    """Every (symbol, hour) of the ``days`` days before ``end``, and ``end`` itself."""
    hours = [*pd.date_range(end - pd.Timedelta(days=days), end, freq="h"), end]
    return [s for s in symbols for _ in hours], [h for _ in symbols for h in hours]


@dataclass
class Reproduction:
    conn: object
    runs: Runs
    t_known: pd.Timestamp  # T: the training set is taken as the store knew it then
    symbols: list[str]
    ats: list[pd.Timestamp]
    taken: dict[str, tuple]  # function -> checksum at T, without the replacement columns
    strict: dict[str, tuple]  # function -> checksum of whole rows at T


@pytest.fixture(scope="module")
def reproduction(db_url, _yfinance_cache_dir) -> Iterator[Reproduction]:
    """Pinned-clock runs up to T (Monday 13:06 New York, mid-session), a training set taken at T,
    then four more days of runs: Yahoo corrects a bar of the training set and one of T's own day,
    PEP splits 4:1 (its whole history re-adjusted), KO is delisted for three runs."""
    with module_store(db_url) as conn:
        runs = Runs(synthetic_session, SYMBOLS)
        runs.backfill("2025-11-21 22:00Z", days=60)
        runs.features(utc("2025-11-21 22:00Z") + FEATURES_LAG)
        monday = run_hours("2025-11-24")
        for t in monday[:4]:  # 10:00 … 13:00 New York: partial bars among T's versions
            runs.hour(t)
        t_known = monday[3] + pd.Timedelta(minutes=6)
        symbols, ats = training_grid(SYMBOLS, t_known, days=30)
        taken = {fn: asof_checksum(conn, fn, symbols, ats, known_at=t_known) for fn in FUNCTIONS}
        strict = {fn: asof_checksum(conn, fn, symbols, ats, known_at=t_known, strict=True) for fn in FUNCTIONS}
        for t in monday[4:]:
            runs.hour(t)
        runs.faults = {"AAPL": "correct:2025-11-21T17:30Z:1.01", "MSFT": "correct:2025-11-24T15:30Z:0.98"}
        for t in ("2025-11-25 15:00Z", "2025-11-25 18:00Z", "2025-11-25 21:00Z"):
            runs.hour(t)
        runs.faults.update(PEP="split:2025-11-26:4", KO="delisted")
        for t in ("2025-11-26 15:00Z", "2025-11-26 18:00Z", "2025-11-26 21:00Z"):
            runs.hour(t)
        del runs.faults["KO"]
        runs.hour("2025-11-28 18:00Z")  # the half day's close
        yield Reproduction(conn, runs, t_known, symbols, ats, taken, strict)


@pytest.mark.slow
def test_a_training_set_known_at_t_is_reproducible_after_splits_corrections_and_delistings(reproduction):
    r = reproduction
    check_store(r.conn, r.runs.reports)
    assert all(n > 0.6 * len(r.ats) for _, n in r.taken.values()), r.taken  # nights and weekends answer too
    reasons = {x for (x,) in query(r.conn, "SELECT DISTINCT reason FROM market_data_revisions")}
    # a re-adjustment names its action: "readjustment: the 4-for-1 split of …"
    assert {"readjustment", "correction", "partial_bar_completed"} <= {x.split(":")[0] for x in reasons}
    delisted = [x.reason for rep in r.runs.reports for x in rep.results if x.symbol == "KO" and x.status == "failed"]
    assert delisted and all("symbol may be delisted" in reason for reason in delisted)
    wednesday = "SELECT count(*) FROM market_data WHERE symbol = 'KO' AND ingested_at::date = '2025-11-26'"
    assert query(r.conn, wednesday) == [(0,)]
    for fn, expected in r.taken.items():
        assert asof_checksum(r.conn, fn, r.symbols, r.ats, known_at=r.t_known) == expected, fn
        # the store did change under T's answers: today's values differ
        assert asof_checksum(r.conn, fn, r.symbols, r.ats, known_at=TODAY)[0] != expected[0], fn
    # T's training set holds the pre-split adjustment and the uncorrected bar
    for symbol, at, ratio in (("PEP", r.t_known, 4), ("AAPL", utc("2025-11-21 18:30Z"), 1 / 1.01)):
        (old,) = asof_rows(r.conn, "bars_asof", [symbol], [at], known_at=r.t_known)
        (new,) = asof_rows(r.conn, "bars_asof", [symbol], [at], known_at=TODAY)
        assert old["ts"] == new["ts"] and new["close"] == pytest.approx(old["close"] / ratio, rel=1e-3), symbol
        assert new["known_to"] == INFINITY, symbol
        replaced = (
            "SELECT known_to FROM bar_versions WHERE symbol = %s AND interval = '1h' AND ts = %s AND known_from = %s"
        )
        assert query(r.conn, replaced, symbol, old["ts"], old["known_from"])[0][0] < TODAY, symbol


@pytest.mark.slow
def test_a_training_set_known_at_t_is_byte_identical_row_for_row(reproduction):
    r = reproduction
    check_store(r.conn, r.runs.reports)
    for fn, expected in r.strict.items():
        assert asof_checksum(r.conn, fn, r.symbols, r.ats, known_at=r.t_known, strict=True) == expected, fn


# -- no look-ahead, as a property --------------------------------------------------------------
PROPERTY_SYMBOLS = ("AAPL", "KO", "MSFT")
# Moments drawn: from the day before the backfill (nothing known yet) to the day after the last run.
WINDOW_START, WINDOW_US = utc("2025-11-18 12:00"), 7 * 86_400 * 10**6


@dataclass
class History:
    conn: object
    runs: Runs
    edges: list[pd.Timestamp]  # every closes_at, known_from and known_to of the store


@pytest.fixture(scope="module")
def history(db_url, _yfinance_cache_dir) -> Iterator[History]:
    """Three days of irregular pinned runs: hourly, late, missed hours, a features run missing, a
    collect between bars' closes (partial bars of odd fractions), a correction."""
    with module_store(db_url) as conn:
        runs = Runs(synthetic_session, PROPERTY_SYMBOLS)
        runs.backfill("2025-11-19 21:30Z", days=20)
        runs.features(utc("2025-11-19 21:35Z"))
        for t in ("2025-11-20 15:00Z", "2025-11-20 16:00Z", "2025-11-20 17:20Z", "2025-11-20 19:00Z"):
            runs.hour(t)
        runs.hour("2025-11-20 21:00Z")
        runs.faults = {"AAPL": "correct:2025-11-20T17:30Z:1.02"}
        for t in ("2025-11-21 14:45Z", "2025-11-21 16:00Z", "2025-11-21 18:10Z"):
            runs.hour(t)
        runs.collect("2025-11-21 20:00Z")  # no features run this hour
        runs.hour("2025-11-21 22:00Z")
        runs.collect("2025-11-24 15:00Z")
        runs.features("2025-11-24 15:30Z")
        edges = query(
            conn,
            """SELECT DISTINCT t FROM (
                   SELECT closes_at, known_from, nullif(known_to, 'infinity') AS known_to FROM bar_versions
                   UNION ALL
                   SELECT closes_at, known_from, nullif(known_to, 'infinity') FROM feature_versions) v,
               LATERAL (VALUES (v.closes_at), (v.known_from), (v.known_to)) AS x(t)
               WHERE t IS NOT NULL ORDER BY 1""",
        )
        yield History(conn, runs, [utc(t) for (t,) in edges])


def instants(edges: list[pd.Timestamp]) -> st.SearchStrategy[pd.Timestamp]:
    """Any microsecond of the window, or one at or next to a bar's close or a version's bounds."""
    anywhere = st.integers(0, WINDOW_US).map(lambda us: WINDOW_START + pd.Timedelta(microseconds=us))
    inside = [e for e in edges if e >= WINDOW_START]
    near = st.tuples(st.sampled_from(inside), st.sampled_from([-1, 0, 1])).map(lambda e: e[0] + e[1] * MICRO)
    return st.one_of(anywhere, near)


def tolerances(at: pd.Timestamp, answer) -> st.SearchStrategy[pd.Timedelta | None]:
    """None, any span up to three days, or — the bound — exactly (± 1 µs) the distance back to the
    close of the bar that is the answer without a tolerance."""
    spans = st.integers(0, 3 * 86_400).map(lambda n: pd.Timedelta(seconds=n))
    bound = [] if answer is None else [at - answer[2] + d * MICRO for d in (-1, 0, 1)]
    bound = [b for b in bound if b >= pd.Timedelta(0)]
    return st.one_of(st.none(), spans, *([st.sampled_from(bound)] if bound else []))


def expected(conn, view: str, symbol: str, at, interval: str, known_at, served: bool):
    """The brute-force answer over every version, without a tolerance: (ts, known_from, closes_at,
    known_to) or None."""
    k = at if served or known_at is None else known_at
    rows = query(
        conn,
        f"""SELECT ts, known_from, closes_at, known_to FROM {view}
            WHERE symbol = %s AND interval = %s AND known_from <= %s AND %s < known_to
              AND (%s OR (complete AND closes_at <= %s))
            ORDER BY ts DESC, known_from DESC LIMIT 1""",
        symbol,
        interval,
        k,
        k,
        served,
        at,
    )
    return rows[0] if rows else None


@pytest.mark.slow
@pytest.mark.parametrize(("function", "view"), [("features_asof", "feature_versions"), ("bars_asof", "bar_versions")])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_no_look_ahead_and_nothing_newer_qualifies(history, function, view, data):
    check_store(history.conn, history.runs.reports)
    when = instants(history.edges)
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(PROPERTY_SYMBOLS), when), min_size=1, max_size=4))
    mode = data.draw(st.sampled_from(["known", "served"]))
    interval = data.draw(st.sampled_from(["1h", "1d"]))
    known_at = data.draw(st.one_of(st.none(), when, st.just(TODAY)))
    served = mode == "served"
    untolerant = expected(history.conn, view, *pairs[0], interval, known_at, served)
    tolerance = data.draw(tolerances(pairs[0][1], untolerant))
    got = asof_rows(
        history.conn,
        function,
        [s for s, _ in pairs],
        [a for _, a in pairs],
        known_at=known_at,
        bar_interval=interval,
        tolerance=None if tolerance is None else tolerance.to_pytimedelta(),
        mode=mode,
    )
    by_entity = {r["entity"]: r for r in got}
    assert len(by_entity) == len(got) and set(by_entity) <= set(range(1, len(pairs) + 1))
    for i, (symbol, at) in enumerate(pairs, start=1):
        k = at if served or known_at is None else known_at
        want = expected(history.conn, view, symbol, at, interval, known_at, served)
        if want is not None and tolerance is not None and want[2] < at - tolerance:
            want = None  # the newest qualifying bar is too old
        row = by_entity.get(i)
        event("no answer" if want is None else "a revision" if want[3] < INFINITY else "the current row")
        if row is not None and not row["complete"]:
            event("a partial bar served")
        # the same version as the brute force: so no version with a greater ts qualifies either,
        # and a pair without a row has no qualifying version at all
        got_key = None if row is None else (row["ts"], row["known_from"], row["closes_at"])
        assert got_key == (None if want is None else want[:3]), (i, symbol, at)
        if row is None:
            continue
        assert (row["symbol"], row["interval"], row["at"], row["known_at"]) == (symbol, interval, at, k)
        assert row["known_from"] <= k < row["known_to"]
        if not served:
            assert row["closes_at"] <= at and row["complete"]
        if tolerance is not None:
            assert row["closes_at"] >= at - tolerance


def test_live_replay_returns_what_latest_features_served(conn, fake_yahoo):
    """A trading day hour by hour; what `latest_features` served at :06 after each features run
    is what features_asof(mode => 'served') returns for that moment, partial bars included."""
    symbols = ["AAPL", "KO", "SPY"]
    runs = Runs(fake_yahoo, symbols)
    runs.backfill("2025-11-24 22:00Z", days=30)
    runs.features(utc("2025-11-24 22:00Z") + FEATURES_LAG)
    # latest_features' own columns: a view's `f.*` was expanded when it was created (no closes_at)
    columns = table_columns(conn, "latest_features")
    served: dict[pd.Timestamp, list[tuple]] = {}
    for t in [utc("2025-11-25 14:00Z"), *run_hours("2025-11-25")]:  # from before the open to the 16:00 run
        moment = runs.hour(t) + pd.Timedelta(minutes=1)
        served[moment] = query(
            conn,
            f"SELECT {', '.join(columns)} FROM latest_features WHERE interval = '1h' ORDER BY symbol",
        )

    moments = list(served)
    got = asof_rows(conn, "features_asof", symbols * len(moments), [m for m in moments for _ in symbols], mode="served")
    assert len(got) == len(symbols) * len(moments)
    for i, moment in enumerate(moments):
        replay = sorted(tuple(r[c] for c in columns) for r in got[i * len(symbols) : (i + 1) * len(symbols)])
        assert replay == served[moment], moment
    partial = [r for r in got if not r["complete"]]
    assert len(partial) == 6 * len(symbols)  # the runs from 10:00 to 15:00 served a partial bar
    closing = [r for r in got if r["at"] == moments[-1]]
    assert {r["ts"] for r in closing} == {utc("2025-11-25 20:30Z")} and all(r["complete"] for r in closing)

    # The known mode at 10:45 New York: the 09:30 bar has closed, but its complete features only
    # exist from 11:05 on, so the answer is the previous session's last bar — the truth of the day.
    at_1045 = asof_rows(conn, "features_asof", ["AAPL"], [utc("2025-11-25 15:45Z")])
    at_1106 = asof_rows(conn, "features_asof", ["AAPL"], [utc("2025-11-25 16:06Z")])
    assert [r["ts"] for r in at_1045] == [utc("2025-11-24 20:30Z")]
    assert [(r["ts"], r["known_from"]) for r in at_1106] == [(utc("2025-11-25 14:30Z"), utc("2025-11-25 16:05Z"))]


@pytest.fixture
def autumn(conn, fake_yahoo):
    """Two symbols from mid-October to 2025-12-01 (a DST change, Thanksgiving and its half day),
    every version known from 2025-12-01 22:00/22:05; queries ask with known_at => TODAY."""
    runs = Runs(fake_yahoo, ["AAPL", "JPM"])
    runs.backfill("2025-12-01 22:00Z", days=50)
    runs.features(utc("2025-12-01 22:00Z") + FEATURES_LAG)
    return conn


def ts_asof(conn, function: str, at, bar_interval: str = "1h", **kwargs) -> pd.Timestamp | None:
    rows = asof_rows(conn, function, ["JPM"], [utc(at)], known_at=TODAY, bar_interval=bar_interval, **kwargs)
    return rows[0]["ts"] if rows else None


CLOSES = [  # (interval, ts, closes_at)
    ("1h", "2025-10-31 13:30Z", "2025-10-31 14:30Z"),  # EDT: the 09:30 bar is 13:30Z
    ("1h", "2025-11-03 14:30Z", "2025-11-03 15:30Z"),  # EST after the change: 14:30Z
    ("1h", "2025-10-31 19:30Z", "2025-10-31 20:00Z"),  # a session's last bar closes at its close
    ("1h", "2025-11-26 20:30Z", "2025-11-26 21:00Z"),
    ("1h", "2025-11-28 17:30Z", "2025-11-28 18:00Z"),  # the half day's 12:30 bar closes at 13:00
    ("1d", "2025-11-28 05:00Z", "2025-11-28 18:00Z"),  # a half day's daily bar
    ("1d", "2025-10-31 04:00Z", "2025-10-31 20:00Z"),
]


def test_closes_at_follows_the_calendar(autumn, db):
    for interval, ts, closes_at in CLOSES:
        for table in ("market_data", "features"):
            stored = query(autumn, f"SELECT closes_at FROM {table} WHERE interval = %s AND ts = %s", interval, utc(ts))
            assert [c for (c,) in stored] == [utc(closes_at)] * 2, (table, ts)
        for function in FUNCTIONS:  # returned from its close on, not a µs before
            assert ts_asof(autumn, function, closes_at, interval) == utc(ts), (function, ts)
            assert ts_asof(autumn, function, utc(closes_at) - MICRO, interval) != utc(ts), (function, ts)
    # SQL's own bar_closes_at (the migration's fill, the features' fallback) agrees on every row
    # once market_sessions holds the calendar
    sync_sessions(db)
    for table in ("market_data", "features"):
        differ = f"SELECT count(*) FROM {table} WHERE closes_at IS DISTINCT FROM bar_closes_at(interval, ts)"
        assert query(autumn, differ) == [(0,)], table


def test_calendar_edges_of_the_lookup(autumn):
    for function in FUNCTIONS:
        # the last bar of a session: at its close it is the answer, a µs before it the bar before
        assert ts_asof(autumn, function, "2025-11-26 21:00Z") == utc("2025-11-26 20:30Z")
        assert ts_asof(autumn, function, utc("2025-11-26 21:00Z") - MICRO) == utc("2025-11-26 19:30Z")
        # the half day: 12:30 bar at 13:00 New York; the hour after the close has nothing newer
        assert ts_asof(autumn, function, "2025-11-28 18:00Z") == utc("2025-11-28 17:30Z")
        assert ts_asof(autumn, function, "2025-11-28 19:30Z") == utc("2025-11-28 17:30Z")
        assert ts_asof(autumn, function, utc("2025-11-28 18:00Z") - MICRO) == utc("2025-11-28 16:30Z")
        # Thanksgiving inside the window: Wednesday's last bar, unless the tolerance calls it stale
        assert ts_asof(autumn, function, "2025-11-27 16:00Z") == utc("2025-11-26 20:30Z")
        assert ts_asof(autumn, function, "2025-11-27 16:00Z", tolerance="1 day") == utc("2025-11-26 20:30Z")
        assert ts_asof(autumn, function, "2025-11-27 16:00Z", tolerance="18 hours") is None
        assert ts_asof(autumn, function, "2025-11-27 16:00Z", tolerance="19 hours") == utc("2025-11-26 20:30Z")
        # the label is not the event time: five minutes into the DST-shifted 09:30 bar it is unknown
        assert ts_asof(autumn, function, "2025-11-03 14:35Z") == utc("2025-10-31 19:30Z")
        assert ts_asof(autumn, function, "2025-10-31 13:35Z") == utc("2025-10-30 19:30Z")
        # daily bars: only from the session's close (16:00 or 13:00 New York), never from the label
        assert ts_asof(autumn, function, "2025-11-03 05:05Z", "1d") == utc("2025-10-31 04:00Z")
        assert ts_asof(autumn, function, "2025-11-03 20:59Z", "1d") == utc("2025-10-31 04:00Z")
        assert ts_asof(autumn, function, "2025-11-03 21:00Z", "1d") == utc("2025-11-03 05:00Z")
        assert ts_asof(autumn, function, "2025-11-27 20:00Z", "1d") == utc("2025-11-26 05:00Z")  # the holiday


def test_a_pair_without_an_answer_has_no_row(autumn):
    rows = asof_rows(
        autumn,
        "features_asof",
        ["JPM", "NOPE", "AAPL", "JPM"],
        ["2025-11-26 21:00Z", "2025-11-26 21:00Z", "2025-11-26 21:00Z", "2025-10-01 12:00Z"],
        known_at=TODAY,
    )
    assert [(r["entity"], r["symbol"]) for r in rows] == [(1, "JPM"), (3, "AAPL")]  # join back on entity
    # known as of before anything was stored: nothing, not today's values
    assert asof_rows(autumn, "bars_asof", ["JPM"], ["2025-11-26 21:00Z"]) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("ARRAY['AAPL', 'KO'], ARRAY[now()]", "symbols and at pair up element by element: 2 symbols, 1 timestamps"),
        ("ARRAY['AAPL'], ARRAY[now()], mode => 'live'", "mode must be 'known' or 'served', not 'live'"),
        ("ARRAY['AAPL'], ARRAY[now()], mode => NULL", "mode must be 'known' or 'served', not NULL"),
        ("ARRAY['AAPL'], ARRAY[now()], bar_interval => '5m'", "bar_interval must be '1h' or '1d', not '5m'"),
        ("ARRAY['AAPL'], ARRAY[now()], tolerance => '-1 hour'", "tolerance must not be negative, not -01:00:00"),
    ],
)
@pytest.mark.parametrize("function", ["features_asof", "bars_asof"])
def test_bad_arguments_raise_one_clear_error(conn, function, arguments, message):
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InvalidParameterValue) as caught:
        cur.execute(f"SELECT * FROM {function}({arguments})")
    conn.rollback()
    assert caught.value.pgerror.splitlines()[0] == f"ERROR:  {message}"
