"""What a batch reads: a series whose changes are logged is read from where they begin (its bars
from the look-back before), and the rows it then writes equal a full recompute — a new bar, a
correction of an older bar, and a running sum continued from a row the bounded read did not hold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfs.features import compute
from mfs.features.reads import read_plans
from mfs.features.version import FEATURE_VERSION
from mfs.storage import progress
from tests.features.feature_helpers import BUILTIN_SET, FEATURE_NAMES, make_bars
from tests.features.test_progress import _ingest

LOOKBACK = 450


def _features(conn, symbols: list[str]) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, ts, " + ", ".join(FEATURE_NAMES) + " FROM features WHERE symbol = ANY(%s) ORDER BY 1, 2",
            (symbols,),
        )
        frame = pd.DataFrame(cur.fetchall(), columns=["symbol", "ts", *FEATURE_NAMES])
    conn.rollback()
    return frame


def _plans(conn, symbols: list[str]):
    with conn.cursor() as cur:
        seen = progress.series_changes(cur, symbols, "1h", FEATURE_VERSION)
        bars, plans = read_plans(
            cur, symbols, "1h", seen.changed_from, full=False, lookback=LOOKBACK, cumulative=BUILTIN_SET.cumulative
        )
    conn.rollback()
    return seen, bars, plans


def test_a_logged_change_is_read_from_where_it_begins_and_equals_a_full_recompute(conn) -> None:
    a, b = make_bars(700, seed=11), make_bars(700, seed=12)
    _ingest({"AAA": a.iloc[:650], "BBB": b.iloc[:650]})
    compute(["AAA", "BBB"], "1h")

    corrected = b.iloc[600:656].copy()
    corrected.loc[corrected.index[0], ["close", "high"]] = corrected.iloc[0][["close", "high"]] * 1.01
    _ingest({"AAA": a.iloc[650:660], "BBB": corrected})  # ten new bars; an older bar corrected, six new
    seen, bars, plans = _plans(conn, ["AAA", "BBB"])
    assert set(seen.changed_from) == {"AAA", "BBB"}  # both bounded, neither compared in full
    for (symbol, frame, begins), rec, plan in zip([("AAA", a, 650), ("BBB", b, 600)], bars, plans, strict=True):
        # Bars from the 451st before the change; compared from the change, recomputed from it.
        assert (
            pd.Timestamp(int(plan.bar_ts[0]) + 946_684_800_000_000, unit="us", tz="UTC")
            == frame["ts"].iloc[begins - LOOKBACK - 1]
        ), symbol
        assert len(rec) == LOOKBACK + 1 + len(frame.iloc[begins : 660 if symbol == "AAA" else 656]), symbol
        assert not plan.complete and plan.start == LOOKBACK + 1 and plan.first == 1, symbol
        # The running sums of bars[first], read after planning: their row is not among those compared.
        assert plan.anchors is not None and set(plan.anchors) == set(BUILTIN_SET.cumulative), symbol

    run = compute(["AAA", "BBB"], "1h")
    counts = {r.symbol: r for r in run.results}
    assert (counts["AAA"].inserted, counts["AAA"].updated) == (10, 0)
    assert counts["BBB"].inserted == 6 and counts["BBB"].updated > 0

    incremental = _features(conn, ["AAA", "BBB"])
    compute(["AAA", "BBB"], "1h", full=True)
    full = _features(conn, ["AAA", "BBB"])
    assert len(incremental) == len(full) == 660 + 656
    for name in FEATURE_NAMES:
        got, want = incremental[name].to_numpy(dtype=float), full[name].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        m = ~np.isnan(want)
        assert np.allclose(got[m], want[m], rtol=1e-9, atol=0), name


def test_an_unlogged_change_and_an_unchanged_series_read_nothing_bounded(conn) -> None:
    a, b = make_bars(500, seed=13), make_bars(500, seed=14)
    _ingest({"AAA": a.iloc[:499], "BBB": b})
    compute(["AAA", "BBB"], "1h")
    _ingest({"AAA": a.iloc[499:]})
    seen, bars, plans = _plans(conn, ["AAA", "BBB"])
    assert seen.changed_from["BBB"] == progress.UNCHANGED and len(bars[1]) == 0 and plans[1].start is None
    assert plans[0].start == LOOKBACK + 1

    with conn.cursor() as cur:  # a count without its log entry (as counted before the log existed)
        cur.execute("DELETE FROM series_change_log WHERE symbol = 'AAA'")
    conn.commit()
    seen, bars, plans = _plans(conn, ["AAA", "BBB"])
    assert "AAA" not in seen.changed_from and len(bars[0]) == 500 and plans[0].complete
    assert plans[0].start == 499 and plans[0].first == 499 - LOOKBACK and plans[0].anchors is not None


def test_a_running_sum_not_stored_where_the_bounded_read_starts_sends_the_series_to_a_full_read(conn) -> None:
    a = make_bars(700, seed=15)
    _ingest({"AAA": a.iloc[:650]})
    compute(["AAA"], "1h")
    with conn.cursor() as cur:  # a writer accounting for its own write, leaving the anchor NULL
        cur.execute("SELECT set_config('mfs.accounted_write', 'on', true)")
        cur.execute("UPDATE features SET obv = NULL WHERE symbol = 'AAA' AND ts = %s", (a["ts"].iloc[650 - LOOKBACK],))
    conn.commit()
    _ingest({"AAA": a.iloc[650:651]})
    _, bars, plans = _plans(conn, ["AAA"])
    assert len(bars[0]) == 651 and plans[0].complete and (plans[0].first, plans[0].anchors) == (0, None)

    compute(["AAA"], "1h")
    newest = _features(conn, ["AAA"]).iloc[-1]
    compute(["AAA"], "1h", full=True)
    assert np.allclose(
        newest[FEATURE_NAMES].to_numpy(dtype=float),
        _features(conn, ["AAA"]).iloc[-1][FEATURE_NAMES].to_numpy(dtype=float),
        rtol=1e-9,
        equal_nan=True,
    )
