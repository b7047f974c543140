"""Drift on a year of the synthetic market: five symbols unchanged, five whose volatility is
multiplied by 5 from 2026-11-16 on (the offline Yahoo's ``volatility`` fault). The regime change
is flagged for the volatility-dependent features within the recent window; the unchanged year
raises no drift (every session's check replayed); a changed definition restarts its reference."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mfs.features import definitions, registry
from mfs.features.monitoring import drift
from mfs.features.run import compute
from mfs.ingest.run import collect
from mfs.sources.yahoo import clear_request_cache
from mfs.storage.connection import connect
from tests.dataset.store import empty_store, pinned_runs
from tests.fixtures.config import config_environment

CLEAN = ["AAPL", "MSFT", "KO", "JPM", "XOM"]
SHOCKED = ["NVDA", "AMZN", "META", "JNJ", "PG"]
SHOCK_DAY = dt.date(2026, 11, 16)  # the recent window of the run at END is the new regime
END = pd.Timestamp("2026-11-20 16:30", tz="America/New_York").tz_convert("UTC")  # after that session's close
GROUPS = "{clean: [AAPL, MSFT, KO, JPM, XOM], shocked: [NVDA, AMZN, META, JNJ, PG]}"
VOLATILITY_DEPENDENT = {"volatility_20", "natr_14", "range_pct", "bb_width"}


@pytest.fixture(scope="module")
def year_store(db_url: str, _yfinance_cache_dir) -> Iterator[str]:
    from mfs.sources.fake_yahoo import synthetic_session

    empty_store(db_url)
    faults = {s: [f"volatility:{SHOCK_DAY}:5"] for s in SHOCKED}
    with pinned_runs():
        os.environ["MFS_CLOCK"] = END.isoformat()
        with config_environment(MFS_MONITORING__GROUPS=GROUPS):
            clear_request_cache()
            collect(CLEAN + SHOCKED, None, days=365, session=synthetic_session(asof=END, faults=faults))
            compute(CLEAN + SHOCKED, None, raise_on_failure=True)
        yield db_url


@pytest.fixture
def groups(config_env, year_store):
    config_env(MFS_MONITORING__GROUPS=GROUPS, MFS_CLOCK=END.isoformat())
    return year_store


def test_a_regime_change_is_flagged_within_the_recent_window(groups):
    features = definitions.load()
    replayed = drift.replay("1h", features, SHOCK_DAY, END.date(), symbols=SHOCKED)
    recent = 5  # monitoring.recent_sessions 1h
    flagged_on = {}
    for i, (_day, verdicts) in enumerate(sorted(replayed.items())):
        for v in verdicts:
            if v.drifting and v.feature not in flagged_on:
                flagged_on[v.feature] = i + 1  # sessions of the new regime in the recent window
    assert set(flagged_on) >= VOLATILITY_DEPENDENT, flagged_on
    assert max(flagged_on[f] for f in VOLATILITY_DEPENDENT) <= recent, flagged_on


def test_the_runs_check_records_drift_per_group(groups):
    conn = connect(groups)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT symbol_group, feature, drifting, status, recent_to FROM feature_drift WHERE interval = '1h'"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    # Checked by the features run itself, once, for the session that closed before it ran.
    assert {r[4] for r in rows} == {END.date()}
    by = {(g, f): (d, s) for g, f, d, s, _ in rows}
    assert all(by["shocked", f][0] for f in ("volatility_20", "range_pct")), by
    assert not any(d for (g, _f), (d, _s) in by.items() if g == "clean"), [k for k, v in by.items() if v[0]]
    assert {s for (g, _f), (_d, s) in by.items() if g == "clean"} == {"ok"}


@pytest.mark.parametrize("interval", ["1h", "1d"])
def test_a_year_of_the_unchanged_market_raises_no_drift(groups, interval):
    features = definitions.load()
    replayed = drift.replay(interval, features, dt.date(2026, 3, 2), END.date(), symbols=CLEAN)
    checks = [v for verdicts in replayed.values() for v in verdicts if v.status in ("ok", "drift")]
    false = [(v.recent_to, v.feature, round(v.psi or 0, 2), round(v.threshold, 2)) for v in checks if v.drifting]
    assert len(replayed) > 100 and len(checks) > 100 * 15
    assert not false, f"{len(false)} of {len(checks)} clean checks flagged: {false[:10]}"


def test_a_changed_definition_restarts_its_reference(groups, tmp_path: Path, config_env):
    text = definitions.read_source().replace('expr: "std(return_1, 20)"', 'expr: "100 * std(return_1, 20)"')
    assert "100 * std(return_1, 20)" in text
    changed = tmp_path / "features.yaml"
    changed.write_text(text)
    config_env(MFS_FEATURES_FILE=str(changed))
    features = definitions.load(changed)
    before = {v.feature: v for v in drift.check("1h", features, force=True) if v.symbol_group == "clean"}
    registry.sync(features)  # registered, not yet computed: the column holds the old definition's values
    pending = {v.feature: v for v in drift.check("1h", features, force=True) if v.symbol_group == "clean"}
    assert pending["volatility_20"].status == "restarting"
    assert pending["volatility_20"].version != before["volatility_20"].version
    compute(CLEAN + SHOCKED, "1h", raise_on_failure=True)  # the new version is filled over the history
    after = {v.feature: v for v in drift.check("1h", features, force=True) if v.symbol_group == "clean"}
    assert after["volatility_20"].status == "ok" and after["volatility_20"].version == pending["volatility_20"].version
    assert after["return_1"].psi == pytest.approx(before["return_1"].psi)  # the others are as they were
