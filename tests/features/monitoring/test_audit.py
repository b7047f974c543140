"""The self-audit on a store built by a backfill and two weeks of hourly runs (partial bars, a
correction, a split): it passes; one stored value altered by 1e-6 relative in SQL fails it, naming
the symbol and the feature. On the same store: feature_skew and feature_stats."""

from __future__ import annotations

import pytest

from mfs.errors import RunFailedError
from mfs.features.monitoring.audit import audit
from mfs.storage.connection import connect
from tests.features.monitoring.hourly_store import SYMBOLS


def _query(url: str, statement: str, params=()) -> list[tuple]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
    finally:
        conn.close()
    return rows


def test_the_store_has_what_the_audit_must_cope_with(hourly_store):
    reasons = dict(_query(hourly_store, "SELECT reason, count(*) FROM features_revisions GROUP BY 1"))
    assert reasons.get("bar_revised", 0) > 0  # partial bars completed (and the correction)
    assert any(r.startswith("readjustment") for r in reasons) or reasons.get("bar_revised", 0) > 100  # the split
    (corrected,) = _query(
        hourly_store,
        "SELECT count(*) FROM market_data_revisions WHERE symbol = 'MSFT' AND ts = '2026-11-18T15:30Z' "
        "AND interval = '1h'",
    )
    assert corrected[0] >= 1


def test_the_audit_passes_on_a_store_built_by_hourly_runs(hourly_store):
    report = audit(SYMBOLS)
    a = report.extra["audit"]
    assert a["passed"], a["mismatches"][:3]
    assert a["rows"] > 3 * 500 and a["values"] > a["rows"] * 30
    assert a["worst"]["rel_diff"] < 1e-9
    ((passed, symbols, worst),) = _query(
        hourly_store, "SELECT passed, symbols, worst_rel_diff FROM feature_audits WHERE run_id = %s", (report.run_id,)
    )
    assert passed and symbols == SYMBOLS and worst < 1e-9
    ((status,),) = _query(hourly_store, "SELECT status FROM pipeline_runs WHERE run_id = %s", (report.run_id,))
    assert status == "completed"


def test_one_value_altered_by_a_millionth_fails_the_audit_naming_symbol_and_feature(hourly_store):
    where = "symbol = 'MSFT' AND interval = '1h' AND ts = '2026-11-19T17:30Z'"
    _query(hourly_store, f"UPDATE features SET sma_20 = sma_20 * (1 + 1e-6) WHERE {where}")
    try:
        with pytest.raises(RunFailedError) as caught:
            audit(["MSFT", "KO"])
        message = str(caught.value)
        assert "MSFT" in message and "sma_20" in message and "KO" not in message
        ((passed, rows, worst),) = _query(
            hourly_store,
            "SELECT passed, mismatching_rows, worst FROM feature_audits ORDER BY id DESC LIMIT 1",
        )
        assert not passed and rows == 1
        assert worst["symbol"] == "MSFT" and worst["feature"] == "sma_20" and worst["ts"].startswith("2026-11-19T17:30")
        assert 0.9e-6 < worst["rel_diff"] <= 1.0001e-6  # relative to the value or the column's mean size
    finally:
        _query(hourly_store, f"UPDATE features SET sma_20 = sma_20 / (1 + 1e-6) WHERE {where}")


def test_feature_skew_is_nonzero_on_partial_bars_and_zero_on_complete_ones(hourly_store):
    rows = _query(
        hourly_store,
        "SELECT feature, partial, versions, differing, max_abs_diff FROM feature_skew WHERE interval = '1h'",
    )
    partial = {f: (n, d, m) for f, p, n, d, m in rows if p}
    complete = {f: (n, d, m) for f, p, n, d, m in rows if not p}
    assert set(partial) == set(complete) and "sma_20" in partial
    for feature in ("return_1", "sma_5", "range_pct", "volume_sma_20"):
        versions, differing, largest = partial[feature]
        assert versions > 0 and differing > 0 and largest > 0, feature
    for feature, (versions, differing, largest) in complete.items():
        assert versions > 0 and differing == 0 and not largest, feature
    # A bar's label decides the calendar columns: the same on the partial bar.
    assert partial["hour_et"][1] == 0


def test_feature_stats_describe_each_run(hourly_store):
    (run_id,) = _query(
        hourly_store,
        "SELECT run_id FROM feature_stats WHERE interval = '1h' AND scope = 'cross_section' "
        "ORDER BY computed_at DESC LIMIT 1",
    )[0]
    stats = {
        (scope, feature): (symbols, rows, nulls, mean, p50, lo, hi)
        for scope, feature, symbols, rows, nulls, mean, p50, lo, hi in _query(
            hourly_store,
            "SELECT scope, feature, symbols, rows, nulls, mean, p50, min, max FROM feature_stats "
            "WHERE run_id = %s AND interval = '1h'",
            (run_id,),
        )
    }
    symbols, rows, nulls, mean, p50, lo, hi = stats["cross_section", "sma_20"]
    assert symbols == 3 and rows == 3 and nulls == 0
    ((want_mean, want_median),) = _query(
        hourly_store,
        "SELECT avg(sma_20), percentile_cont(0.5) WITHIN GROUP (ORDER BY sma_20) FROM features_latest "
        "WHERE interval = '1h'",
    )
    assert mean == pytest.approx(want_mean) and p50 == pytest.approx(want_median) and lo <= p50 <= hi
    written = stats["written", "return_1"]
    assert written[0] == 3 and written[1] >= 3  # the run wrote each symbol's newest bar at least
    # The daily features too, and every feature column of the store.
    ((features,),) = _query(hourly_store, "SELECT count(*) FROM mfs_feature_columns()")
    assert len({f for s, f in stats if s == "cross_section"}) == features


def test_mfs_status_shows_the_audit_the_drift_and_the_skew(hourly_store, config_env, capsys):
    from mfs.cli.main import main

    config_env(MFS_CLOCK="2026-11-30T20:00:00Z")
    audit(["KO"])
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "feature audit  2026-11-30 20:00 UTC passed: 1 symbols" in out
    assert "feature drift  0 drifting of " in out and " judged, " in out
    line = next(x for x in out.splitlines() if x.startswith("feature skew"))
    assert "0 partial-bar versions" not in line and "largest median relative skew: " in line


def test_feature_stats_leave_each_features_warm_up_out(hourly_store):
    """The backfill's run wrote every bar of the three symbols: the values counted per feature
    differ by exactly the warm-ups (199 bars of sma_200, 1 of return_1, per symbol), none NULL."""
    rows = dict(
        _query(
            hourly_store,
            "SELECT feature, rows FROM feature_stats WHERE interval = '1h' AND scope = 'written' "
            "AND run_id = (SELECT run_id FROM feature_stats ORDER BY computed_at LIMIT 1) "
            "AND feature IN ('sma_200', 'return_1', 'hour_et')",
        )
    )
    assert rows["hour_et"] - rows["return_1"] == 3 * 1
    assert rows["return_1"] - rows["sma_200"] == 3 * (199 - 1)
    ((nulls,),) = _query(
        hourly_store,
        "SELECT max(nulls) FROM feature_stats WHERE feature IN ('sma_200', 'return_1', 'rsi_14', 'volatility_20')",
    )
    assert nulls == 0


def test_bars_the_features_run_has_not_seen_yet_are_pending_not_mismatches(hourly_store, config_env):
    """A collection after the last features run (its bars newer than every feature row): the audit
    leaves those bars out, and passes; a feature row deleted by hand is not pending: it fails."""
    from mfs.ingest.run import collect
    from mfs.sources.fake_yahoo import synthetic_session
    from tests.features.monitoring.hourly_store import ny

    later = ny("2026-12-01", 11)  # after the store's last runs (2026-11-30 16:05)
    config_env(MFS_CLOCK=later.isoformat())
    collect(["KO"], None, session=synthetic_session(asof=later))
    assert audit(["KO"]).extra["audit"]["passed"]
    _query(
        hourly_store,
        "DELETE FROM features WHERE symbol = 'KO' AND interval = '1d' AND ts = "
        "(SELECT min(ts) + interval '10 days' FROM features WHERE symbol = 'KO' AND interval = '1d')",
    )
    with pytest.raises(RunFailedError, match=r"KO \(audit_1d\): 1 row\(s\) differ"):
        audit(["KO"])
