"""The feature registry on a real store: features added, changed, retired and pruned through the
definitions file, each run filling only the columns that need it (a database of the test's own:
these tests change the schema)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
import yaml

from mfs.cli.main import main
from mfs.dataset import latest_features
from mfs.features import compute
from mfs.features.definitions import definitions_path
from mfs.storage.connection import connect
from tests.dataset.oracle import assert_same_rows, sql_latest
from tests.features.feature_helpers import insert_bars, make_bars

BUILT_IN = yaml.safe_load(definitions_path().read_text())["features"]
RSI_7 = {"name": "rsi_7", "talib": "RSI", "params": {"timeperiod": 7}}
KAMA_30 = {"name": "kama_30", "talib": "KAMA", "params": {"timeperiod": 30}}
CLOSE_Z60 = {"name": "close_z60", "expr": "zscore(close, 60)"}
KEY_AND_META = ("symbol", "interval", "ts", "feature_version", "bar_ingested_at", "closes_at")


@pytest.fixture
def store(own_db, tmp_path, config_env):
    """Two hourly symbols and a daily one with features of the built-in file; returns a function
    writing the definitions file the next runs read."""
    path = tmp_path / "features.yaml"

    def define(*extra: dict) -> None:
        path.write_text(yaml.safe_dump({"features": [*BUILT_IN, *extra]}, sort_keys=False))

    define()
    config_env(MFS_FEATURES_FILE=str(path))
    conn = connect(own_db)
    insert_bars(conn, "AAA", "1h", make_bars(700, seed=1))
    insert_bars(conn, "BBB", "1h", make_bars(650, seed=2))
    insert_bars(conn, "CCC", "1d", make_bars(300, seed=3, interval="1d"))
    conn.close()
    assert compute(["AAA", "BBB", "CCC"]).counts().symbols_failed == 0
    return define


def query(sql: str, params: tuple = ()) -> list[tuple]:
    conn = connect(None)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def columns(relation: str) -> list[str]:
    rows = query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        (relation,),
    )
    return [r[0] for r in rows]


def checksum(names: list[str]) -> str:
    """One hash of every feature row's key and ``names``, NULLs and -0.0 included."""
    cols = ", ".join(KEY_AND_META + tuple(names))
    ((digest,),) = query(
        f"SELECT md5(string_agg(md5(textin(record_out(row({cols})))), '' ORDER BY symbol, interval, ts)) FROM features"
    )
    return digest


def series(symbol: str, interval: str, *names: str) -> dict[str, np.ndarray]:
    rows = query(
        f"SELECT m.close, {', '.join('f.' + n for n in names)} FROM market_data m "
        "JOIN features f USING (symbol, interval, ts) WHERE symbol = %s AND interval = %s ORDER BY ts",
        (symbol, interval),
    )
    values = np.array(rows, dtype=float)
    return {"close": values[:, 0], **{n: values[:, i + 1] for i, n in enumerate(names)}}


def zscore(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    for t in range(n - 1, len(close)):
        window = close[t - n + 1 : t + 1]
        out[t] = (close[t] - window.mean()) / window.std()
    return out


def assert_like_talib(got: np.ndarray, want: np.ndarray) -> None:
    """Equal to TA-Lib where stored; NULL in the warm-up (and where a window is degenerate)."""
    assert np.isnan(got[np.isnan(want)]).all()
    m = ~np.isnan(got)
    assert m.sum() > len(got) - 40
    np.testing.assert_array_equal(got[m], want[m])


def assert_latest_packed_rows_are_the_view() -> None:
    """The packed rows (sql/074) were rebuilt with the columns: decoded, they are the view."""
    conn = connect(None)
    try:
        assert_same_rows(latest_features(conn=conn), sql_latest(conn))
    finally:
        conn.close()


def registry(name: str) -> list[tuple]:
    return query(
        "SELECT version, added_at IS NOT NULL, filled_at IS NOT NULL, superseded_at IS NOT NULL, "
        "retired_at IS NOT NULL, pruned_at IS NOT NULL, definition FROM feature_registry WHERE name = %s ORDER BY id",
        (name,),
    )


def test_added_features_get_their_columns_filled_and_nothing_else_changes(store):
    built_in = [c for c in columns("features") if c not in (*KEY_AND_META, "computed_at")]
    before = checksum(built_in)
    store(RSI_7, KAMA_30, CLOSE_Z60)
    report = compute(["AAA"], "1h")  # the fill covers every stored symbol, not just the run's
    assert report.extra["registry"]["added"] == ["rsi_7", "kama_30", "close_z60"]
    assert report.extra["registry"]["filled"] == ["rsi_7", "kama_30", "close_z60"]
    assert {r.stage for r in report.results} == {"features_1h", "fill_1h", "fill_1d"}
    assert checksum(built_in) == before
    for relation in ("features", "features_revisions", "features_1d", "latest_features", "feature_versions"):
        assert columns(relation)[-3:] == ["rsi_7", "kama_30", "close_z60"], relation
    assert_latest_packed_rows_are_the_view()
    for symbol, interval in (("AAA", "1h"), ("BBB", "1h"), ("CCC", "1d")):
        got = series(symbol, interval, "rsi_7", "kama_30", "close_z60")
        assert_like_talib(got["rsi_7"], talib.RSI(got["close"], 7))
        assert_like_talib(got["kama_30"], talib.KAMA(got["close"], 30))
        want = zscore(got["close"], 60)
        assert np.array_equal(np.isnan(got["close_z60"]), np.isnan(want))
        np.testing.assert_allclose(got["close_z60"], want, rtol=1e-9, atol=1e-12)
    assert [r[1:6] for r in registry("kama_30")] == [(True, True, False, False, False)]
    ((change, statements),) = query("SELECT change, statements FROM feature_schema_changes")
    assert change == "add rsi_7, kama_30, close_z60"
    assert 'ALTER TABLE "features_revisions" ADD COLUMN "kama_30" double precision' in statements
    # The previous versions of the filled rows are kept: as of before the fill there was no rsi_7.
    assert query("SELECT DISTINCT reason FROM features_revisions") == [("definition_change",)]
    written = sum(r.written for r in report.results if r.stage.startswith("fill_"))
    assert query("SELECT count(*), count(rsi_7), count(DISTINCT run_id) FROM features_revisions") == [(written, 0, 1)]
    assert query(
        "SELECT count(*) FROM features_revisions r JOIN features f USING (symbol, interval, ts) "
        "WHERE r.rsi_14 IS NOT DISTINCT FROM f.rsi_14 AND r.known_to = f.computed_at AND r.computed_at < f.computed_at"
    ) == [(written,)]
    # Nothing left to fill: the next run does nothing but the incremental update.
    again = compute(["AAA"], "1h")
    assert again.extra["registry"]["filled"] == [] and {r.stage for r in again.results} == {"features_1h"}


def test_new_bars_after_a_fill_are_computed_with_the_new_columns(store, own_db):
    store(KAMA_30)
    compute(["AAA"], "1h")
    conn = connect(own_db)
    insert_bars(conn, "AAA", "1h", make_bars(720, seed=1).iloc[700:])  # the same walk, 20 more bars
    conn.close()
    report = compute(["AAA"], "1h")
    assert report.results[0].fetched == 640 + 20  # KAMA's measured memory widens the look-back
    got = series("AAA", "1h", "kama_30")
    np.testing.assert_allclose(got["kama_30"], talib.KAMA(got["close"], 30), rtol=1e-9)


def test_changing_a_definition_recomputes_it_and_what_reads_it_only(store):
    rsi_step = {"name": "rsi_7_step", "expr": "rsi_7 - rsi_7[t-1]"}
    store(RSI_7, rsi_step, KAMA_30)
    compute(["AAA"], "1h")
    (between,) = query("SELECT now()")[0]
    untouched = [c for c in columns("features") if c not in (*KEY_AND_META, "computed_at", "rsi_7", "rsi_7_step")]
    before = checksum(untouched)
    store({**RSI_7, "params": {"timeperiod": 9}}, rsi_step, KAMA_30)
    report = compute(["AAA"], "1h")
    assert report.extra["registry"]["changed"] == ["rsi_7", "rsi_7_step"]  # the expression reads rsi_7
    assert report.extra["registry"]["filled"] == ["rsi_7", "rsi_7_step"]
    assert checksum(untouched) == before
    got = series("AAA", "1h", "rsi_7", "rsi_7_step")
    assert_like_talib(got["rsi_7"], talib.RSI(got["close"], 9))
    history = registry("rsi_7")
    assert [h[1:6] for h in history] == [(True, True, True, False, False), (True, True, False, False, False)]
    assert [h[6]["params"] for h in history] == [{"timeperiod": 7}, {"timeperiod": 9}]
    assert len({h[0] for h in history}) == 2
    # As known before the change, the store still answers with the timeperiod-7 values.
    rows = query("SELECT rsi_7 FROM features_asof(%s, %s, %s)", (["AAA"], [between], between))
    last_close = series("AAA", "1h", "rsi_7")["close"]
    assert rows[0][0] == pytest.approx(talib.RSI(last_close, 7)[-1], rel=1e-12)


def test_a_removed_feature_is_retired_then_pruned(store, own_db, capsys):
    store(RSI_7)
    compute(["AAA"], "1h")
    store()
    report = compute(["AAA"], "1h")
    assert report.extra["registry"]["retired"] == ["rsi_7"]
    assert "rsi_7" in columns("features") and query("SELECT count(rsi_7) FROM features")[0][0] > 0
    assert main(["features", "list"]) == 0
    assert "rsi_7\t" in capsys.readouterr().out
    assert main(["features", "prune"]) == 0
    assert capsys.readouterr().out.strip() == "pruned rsi_7"
    for relation in ("features", "features_revisions", "features_1d", "latest_features", "feature_versions"):
        assert "rsi_7" not in columns(relation), relation
    assert_latest_packed_rows_are_the_view()
    assert query("SELECT count(*) FROM features_asof(%s, %s::timestamptz[], now())", (["AAA"], ["2030-01-01"])) == [
        (1,)
    ]
    assert [r[1:6] for r in registry("rsi_7")] == [(True, True, False, True, True)]
    assert main(["features", "prune"]) == 0
    assert "nothing to prune" in capsys.readouterr().out
    # Defined again: a new column, filled over the whole history.
    store(RSI_7)
    assert compute(["AAA"], "1h").extra["registry"]["filled"] == ["rsi_7"]
    got = series("BBB", "1h", "rsi_7")
    assert_like_talib(got["rsi_7"], talib.RSI(got["close"], 7))


BAD = [
    ({"name": "bad", "talib": "NOPE"}, "feature bad: talib: 'NOPE' is not a TA-Lib function"),
    (
        {"name": "bad", "talib": "RSI", "params": {"timeperoid": 5}},
        "feature bad: params.timeperoid: 5 is not a parameter",
    ),
    ({"name": "bad", "talib": "RSI", "params": {"timeperiod": 0}}, "feature bad: params: {'timeperiod': 0} refused by"),
    ({"name": "bad", "talib": "RSI", "params": {"timeperiod": None}}, "feature bad: params.timeperiod: None must be"),
    ({"name": "bad", "talib": "MACD"}, "feature bad: output: None must name one of MACD's outputs"),
    ({"name": "bad", "talib": "SMA", "input": "nope"}, "feature bad: input: 'nope' is not a bar column"),
    ({"name": "bad", "expr": "close + nope"}, "feature bad: expr: 'close + nope' reads unknown nope"),
    ({"name": "rsi_14", "talib": "RSI"}, "feature rsi_14: name: 'rsi_14' is defined twice"),
    ({"name": "ts", "talib": "RSI"}, "feature ts: name: 'ts' clashes with a column"),
    ({"name": "Bad-Name", "talib": "RSI"}, "feature 'Bad-Name': name: not a safe SQL identifier"),
    ({"name": "loop", "expr": "loop[t-1] + 1"}, "feature loop: expr: 'loop[t-1] + 1' reads loop (a feature must be"),
    ({"name": "bad", "expr": "close +"}, "feature bad: expr"),
    ({"name": "bad", "expr": "__import__('os')"}, "feature bad: expr"),
    ({"name": "bad", "talib": "VWAP"}, "feature bad: talib: 'VWAP' depends on the whole history"),
]


def test_bad_definitions_stop_before_anything_changes(store, capsys):
    store(RSI_7)
    compute(["AAA"], "1h")
    state = (
        query("SELECT * FROM feature_registry ORDER BY id"),
        columns("features"),
        query("SELECT count(*) FROM pipeline_runs"),
        checksum([c for c in columns("features") if c not in (*KEY_AND_META, "computed_at")]),
    )
    capsys.readouterr()
    for bad, message in BAD:
        store(bad)  # the good rsi_7 is gone from the file too: a refused file retires nothing
        assert main(["features", "--symbols", "AAA"]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("mfs: error: ") and err.count("\n") == 1, err
        assert message in err, (message, err)
    assert state == (
        query("SELECT * FROM feature_registry ORDER BY id"),
        columns("features"),
        query("SELECT count(*) FROM pipeline_runs"),
        checksum([c for c in columns("features") if c not in (*KEY_AND_META, "computed_at")]),
    )
