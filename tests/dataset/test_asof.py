"""mfs.dataset.features_asof / bars_asof against the SQL functions, row for row and bit for bit, on a
store filled by real pinned-clock runs (tests/dataset/store.py): partial bars completed an hour
later, a split that revises every AAPL row, DST, a holiday and a half day; known_at in the past,
between the runs and now; tolerances; served mode; and the symbols the fast path leaves to SQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfs.dataset import DatasetInputError, bars_asof, features_asof, write_dataset
from mfs.errors import InputError
from mfs.storage.connection import connect
from tests.dataset.oracle import assert_same, sql_asof
from tests.dataset.store import FEATURES_LAG, Store, ny
from tests.features.feature_helpers import FEATURE_NAMES

BAR_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]
MIN_US = 60_000_000


def special_moments(store: Store) -> list[pd.Timestamp]:
    """Moments where a plausible implementation goes wrong: exactly at a run (known_from == at),
    just before one, at bar closes on the DST days, on the half day's 13:00 close and after it, on
    Thanksgiving (no session), a weekend, before the first bar and after the last run."""
    moments = []
    for t in store.moments:
        moments += [t, t - pd.Timedelta(microseconds=1), t + pd.Timedelta(minutes=1)]
    moments += [
        ny("2026-10-30", 9, 30),
        ny("2026-10-30", 10, 30),
        ny("2026-10-30", 16),
        ny("2026-10-30", 16, 5),
        ny("2026-11-02", 9, 29),
        ny("2026-11-02", 10, 30),
        ny("2026-11-02", 11, 5),
        ny("2026-11-25", 16),
        ny("2026-11-26", 12),  # Thanksgiving
        ny("2026-11-27", 12, 30),
        ny("2026-11-27", 13),
        ny("2026-11-27", 13, 5),
        ny("2026-11-27", 15),
        ny("2026-11-28", 12),
        ny("2026-11-29", 12),  # a weekend
        ny("2026-10-01", 12),
        ny("2026-12-01", 12),
    ]
    return moments


def entities(store: Store, n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Random (symbol, at) pairs — half anywhere in the store's span, half near a run — plus every
    special moment for every symbol, and an unknown symbol."""
    rng = np.random.default_rng(seed)
    lo, hi = (pd.Timestamp(d, tz="UTC").value // 1000 for d in ("2026-10-05", "2026-12-02"))
    runs = np.array([t.value // 1000 for t in store.moments])
    anywhere = rng.integers(lo, hi, n)
    near = runs[rng.integers(0, len(runs), n)] + rng.integers(-90 * MIN_US, 90 * MIN_US, n)
    at = np.where(rng.random(n) < 0.5, anywhere, near) // MIN_US * MIN_US
    symbols = rng.choice([*store.symbols, "NOPE"], n)
    special = special_moments(store)
    frame = pd.DataFrame(
        {
            "symbol": list(symbols) + [s for s in store.symbols for _ in special],
            "at": list(pd.to_datetime(at, unit="us", utc=True)) + special * len(store.symbols),
        }
    )
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def ents(pit_store: Store) -> pd.DataFrame:
    return entities(pit_store)


@pytest.fixture
def sql(pit_store: Store):
    conn = connect(pit_store.url)
    yield conn
    conn.close()


BEFORE_SPLIT = "2026-11-02T15:30:00Z"  # between runs on the DST Monday, a partial bar in progress
AFTER_SPLIT_RUN = "2026-11-30T15:05:00Z"  # exactly the moment the split's features were written


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"known_at": BEFORE_SPLIT},
        {"known_at": "2026-11-28T00:00Z"},
        {"known_at": AFTER_SPLIT_RUN},
        {"known_at": "now"},
        {"tolerance": "2h"},
        {"tolerance": "90min", "known_at": "2026-11-27T18:30Z"},
        {"mode": "served"},
        {"mode": "served", "tolerance": "1h"},
        {"interval": "1d"},
        {"interval": "1d", "known_at": BEFORE_SPLIT, "tolerance": "1d"},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default",
)
def test_equals_the_sql_function_row_for_row(pit_store, ents, sql, kwargs) -> None:
    got = features_asof(ents, **kwargs)
    assert got.attrs["missing_symbols"] == ["NOPE"]
    assert got.attrs["fallback_rows"] == 0, "the store's versions are regular: all on the fast path"
    tolerance = kwargs.get("tolerance")
    want = sql_asof(
        sql,
        ents,
        known_at=got.attrs["known_at"],
        interval=kwargs.get("interval", "1h"),
        tolerance=None if tolerance is None else f"{pd.Timedelta(tolerance).total_seconds()} seconds",
        mode=kwargs.get("mode", "known"),
    )
    assert_same(got, want)
    assert got["ts"].notna().sum() > 100
    assert got.loc[got["symbol"] == "NOPE", "ts"].isna().all()


def test_the_answers_cover_the_cases_that_matter(pit_store, ents) -> None:
    """The comparisons above are not vacuous: answers from revisions (the pre-split AAPL rows), from
    partial rows (served mode), on the half day's last bar, and known_at = now sees today's values."""
    default = features_asof(ents)
    now = features_asof(ents, known_at="now")
    served = features_asof(ents, mode="served")
    split = pit_store.split_at + FEATURES_LAG
    aapl = (default["symbol"] == "AAPL") & (default["at"] < split) & default["sma_5"].notna()
    assert aapl.sum() > 50
    # Before the split every AAPL answer is the old adjustment; known now, the same bars re-adjusted.
    same_bar = aapl & (now["ts"] == default["ts"])
    assert (now.loc[same_bar, "sma_5"] < default.loc[same_bar, "sma_5"] / 3).all()
    assert (~served["complete"].fillna(True)).sum() > 10
    assert (default["complete"].dropna()).all()
    half_day_close = pd.Timestamp("2026-11-27 18:00", tz="UTC")
    assert (default["closes_at"] == half_day_close).any()
    assert default["known_to"].isna().all()  # the version as it stood: current then


def test_values_round_trip_bit_identically(pit_store, sql) -> None:
    """Values the binary COPY carries as they are: -0.0, subnormals, the extremes, NaN, and NULLs."""
    specials = [-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 0.1, 1 / 3]
    with sql.cursor() as cur:
        cur.execute("SELECT set_config('mfs.keep_revisions', 'off', true)")  # no revision: the row itself
        cur.execute(
            "SELECT max(ts) FROM features WHERE symbol = 'MSFT' AND interval = '1h' AND closes_at < %s",
            (pit_store.moments[0],),
        )
        ts = cur.fetchone()[0]
        # As text cast to float8: a literal -0.0 would be numeric, whose zero has no sign.
        sets = ", ".join(f"{name} = %s::float8" for name in FEATURE_NAMES[: len(specials) + 2])
        cur.execute(
            f"UPDATE features SET {sets} WHERE symbol = 'MSFT' AND interval = '1h' AND ts = %s",
            (*map(repr, specials), "NaN", None, ts),
        )
        frame = pd.DataFrame({"symbol": ["MSFT"], "at": [pd.Timestamp("2026-12-01", tz="UTC")]})
        frame = pd.concat([frame, pd.DataFrame({"symbol": ["MSFT"], "at": [pd.Timestamp(ts) + pd.Timedelta("1h")]})])
        got = features_asof(frame.reset_index(drop=True), known_at="2026-12-01T00:00Z", conn=sql)
        want = sql_asof(sql, frame.reset_index(drop=True), known_at="2026-12-01T00:00Z")
    sql.rollback()
    assert_same(got, want)
    values = got.loc[1, FEATURE_NAMES[: len(specials)]].to_numpy(dtype=float)
    assert values.view(np.int64).tolist() == np.array(specials).view(np.int64).tolist()
    assert np.isnan(got.loc[1, FEATURE_NAMES[len(specials)]]) and np.isnan(got.loc[1, FEATURE_NAMES[len(specials) + 1]])


@pytest.mark.parametrize("kwargs", [{}, {"known_at": BEFORE_SPLIT, "tolerance": "3h"}, {"mode": "served"}])
def test_bars_asof_equals_the_sql_function(ents, sql, kwargs) -> None:
    got = bars_asof(ents, **kwargs)
    tolerance = kwargs.get("tolerance")
    want = sql_asof(
        sql,
        ents,
        known_at=got.attrs["known_at"],
        tolerance=None if tolerance is None else f"{pd.Timedelta(tolerance).total_seconds()} seconds",
        mode=kwargs.get("mode", "known"),
        columns=BAR_COLUMNS,
        function="bars_asof",
    )
    assert got.attrs["fallback_rows"] == 0
    assert_same(got, want, columns=BAR_COLUMNS)
    assert list(got.columns) == ["symbol", "at", "ts", "closes_at", "known_from", "known_to", "complete", *BAR_COLUMNS]


def _irregular(cur, what: str) -> None:
    """Break one assumption of the fast path for one symbol (in the caller's transaction)."""
    cur.execute("SELECT set_config('mfs.clock', '2026-11-30T20:00:00Z', true)")
    pick = "SELECT max(ts) FROM features_revisions WHERE symbol = %s AND interval = '1h'"
    if what == "gap":  # a revision that ends before the next version begins
        cur.execute(
            f"UPDATE features_revisions SET known_to = known_to - interval '1 minute' "
            f"WHERE symbol = 'MSFT' AND interval = '1h' AND ts = ({pick})",
            ("MSFT",),
        )
    elif what == "complete_then_partial":  # a complete row replaced by a partial one
        cur.execute(
            f"UPDATE features SET bar_ingested_at = closes_at - interval '1 minute', computed_at = mfs_now() "
            f"WHERE symbol = 'KO' AND interval = '1h' AND ts = ({pick})",
            ("KO",),
        )
    elif what == "deleted":  # a row deleted: only its revisions are left, the SQL's walk skips it
        cur.execute(f"DELETE FROM features WHERE symbol = 'AAPL' AND interval = '1h' AND ts = ({pick})", ("AAPL",))
    elif what == "known_later":  # a revision known from after the current row it precedes
        cur.execute(
            f"UPDATE features_revisions SET computed_at = known_to + interval '1 hour' "
            f"WHERE symbol = 'MSFT' AND interval = '1h' AND ts = ({pick})",
            ("MSFT",),
        )
    elif what == "no_closes_at":  # a hand-written row without closes_at
        cur.execute(
            "UPDATE features SET closes_at = NULL WHERE symbol = 'MSFT' AND interval = '1h' "
            "AND ts = (SELECT min(ts) FROM features WHERE symbol = 'MSFT' AND interval = '1h')"
        )


@pytest.mark.parametrize(
    ("what", "to_sql"),
    [
        ("gap", "MSFT"),
        ("complete_then_partial", "KO"),
        ("deleted", None),
        ("known_later", "MSFT"),
        ("no_closes_at", "MSFT"),
    ],
)
@pytest.mark.parametrize("kwargs", [{}, {"mode": "served"}, {"known_at": "2026-11-30T21:00Z"}])
def test_irregular_versions_fall_back_to_the_sql_function(pit_store, ents, sql, what, to_sql, kwargs) -> None:
    with sql.cursor() as cur:
        _irregular(cur, what)
    got = features_asof(ents, conn=sql, **kwargs)
    want = sql_asof(sql, ents, known_at=got.attrs["known_at"], mode=kwargs.get("mode", "known"))  # rolls back
    assert_same(got, want)
    expected = 0
    if to_sql and not (what == "complete_then_partial" and kwargs):  # only K = at in known mode cares
        expected = int((ents["symbol"] == to_sql).sum())
    if what in ("gap", "known_later") and kwargs.get("known_at"):
        expected = 0  # a fixed K needs no contiguity: only one complete version valid at K
    assert got.attrs["fallback_rows"] == expected


def test_windows_batches_and_the_parquet_file_give_the_same_rows(pit_store, ents, tmp_path) -> None:
    """Small windows and one-symbol batches (so the older-rows second read runs, and batch results
    are put back in entity order) give the same frame; so does the Parquet file."""
    frame = ents.assign(label=np.arange(len(ents)))  # an extra entity column travels along
    whole = features_asof(frame, tolerance=None)
    out = tmp_path / "ds.parquet"
    summary = write_dataset(frame, out, window_rows=97, batch_symbols=1, progress=False)
    back = pd.read_parquet(out)
    assert list(back.columns) == list(whole.columns)
    assert back["label"].tolist() == list(range(len(ents)))
    assert_same(back, whole)
    assert back["complete"].dtype == "boolean" and back["hour_et"].dtype == "Int16"
    assert (summary.rows, summary.matched, summary.missing_symbols) == (len(ents), whole["ts"].notna().sum(), ["NOPE"])
    assert [p.name for p in tmp_path.iterdir()] == ["ds.parquet"]  # no temp file left


def test_entity_order_columns_and_empty_input(pit_store) -> None:
    frame = pd.DataFrame(
        {"at": pd.to_datetime(["2026-11-24T16:06Z", "2026-11-24T15:00-05:00"], utc=True), "symbol": ["MSFT", "AAPL"]}
    )
    got = features_asof(frame, columns=["rsi_14", "hour_et"])
    assert list(got.columns) == [
        "at",
        "symbol",
        "ts",
        "closes_at",
        "known_from",
        "known_to",
        "complete",
        "rsi_14",
        "hour_et",
    ]
    assert got["symbol"].tolist() == ["MSFT", "AAPL"] and str(got["at"].dt.tz) == "UTC"
    assert (got["ts"] < got["at"]).all() and (got["closes_at"] <= got["at"]).all()
    empty = features_asof(frame.iloc[:0])
    assert len(empty) == 0 and list(empty.columns)[-1] == FEATURE_NAMES[-1]


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"symbol": ["AAPL"]}), {}, "no column 'at'"),
        (pd.DataFrame({"at": [pd.Timestamp("2026-11-24", tz="UTC")]}), {}, "no column 'symbol'"),
        (
            pd.DataFrame({"symbol": ["AAPL"], "at": [pd.Timestamp("2026-11-24")]}),
            {},
            "column 'at' holds timestamps without a time zone",
        ),
        (
            pd.DataFrame({"symbol": ["AAPL"], "at": ["2026-11-24 10:00"]}),
            {},
            "row 0: '2026-11-24 10:00' has no time zone",
        ),
        (pd.DataFrame({"symbol": ["AAPL"], "at": [1]}), {}, "column 'at' must hold timestamps"),
        (pd.DataFrame({"symbol": [None], "at": [pd.Timestamp("2026-11-24", tz="UTC")]}), {}, "None is not a symbol"),
        (None, {"known_at": "2026-11-24 10:00"}, "known_at '2026-11-24 10:00' has no time zone"),
        (None, {"known_at": "yesterday"}, "known_at 'yesterday' is not a timestamp"),
        (None, {"tolerance": "soon"}, "tolerance 'soon' is not a duration"),
        (None, {"tolerance": "-1h"}, "tolerance must not be negative"),
        (None, {"tolerance": 2}, "tolerance must be a duration"),
        (None, {"mode": "live"}, "mode must be one of known, served"),
        (None, {"interval": "5m"}, "interval must be one of 1h, 1d"),
        (pd.DataFrame({"symbol": ["AAPL"], "at": [pd.Timestamp("2026-11-24", tz="UTC")], "ts": [1]}), {}, "clash"),
    ],
)
def test_bad_arguments_are_one_clear_error(frame, kwargs, message) -> None:
    frame = pd.DataFrame({"symbol": ["AAPL"], "at": [pd.Timestamp("2026-11-24", tz="UTC")]}) if frame is None else frame
    with pytest.raises(InputError, match=None) as info:
        features_asof(frame, url="postgresql://nowhere.invalid/none", **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_an_unknown_column_is_one_clear_error_naming_it(pit_store) -> None:
    """Which feature columns exist is the store's (the registry adds them): asked of it."""
    frame = pd.DataFrame({"symbol": ["AAPL"], "at": [pd.Timestamp("2026-11-24", tz="UTC")]})
    with pytest.raises(DatasetInputError) as info:
        features_asof(frame, url=pit_store.url, columns=["rsi_14", "nope"])
    assert "unknown features column(s) 'nope'" in str(info.value) and "\n" not in str(info.value)


def test_parallel_readers_share_one_snapshot(pit_store) -> None:
    """Rows committed after a dataset's session began are seen by none of its connections."""
    import threading

    from mfs.dataset.session import ReadSession

    count = "SELECT count(*) FROM features WHERE symbol IN ('MSFT', 'SNAPX')"
    with ReadSession(url=pit_store.url, readers=2) as session:
        assert session.size == 2
        before = session.run(lambda cur: (cur.execute(count), cur.fetchone()[0])[1])
        writer = connect(pit_store.url)
        try:
            with writer.cursor() as cur:  # the session must not notice
                cur.execute(
                    "INSERT INTO features (symbol, interval, ts, feature_version) VALUES ('SNAPX', '1h', now(), 1)"
                )
            writer.commit()
            both = threading.Barrier(2)
            seen: list[tuple[int, int]] = []

            def read(cur) -> None:
                both.wait(timeout=10)  # both connections busy at once: each thread has its own
                cur.execute(f"SELECT pg_backend_pid(), ({count})")
                seen.append(cur.fetchone())

            threads = [threading.Thread(target=session.run, args=(read,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            writer.rollback()
            with writer.cursor() as cur:
                cur.execute("SELECT set_config('mfs.keep_revisions', 'off', true)")
                cur.execute("DELETE FROM features WHERE symbol = 'SNAPX'")
            writer.commit()
            writer.close()
    assert len({pid for pid, _ in seen}) == 2 and [n for _, n in seen] == [before, before] and before > 0
