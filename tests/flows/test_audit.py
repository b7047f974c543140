"""The monitoring seen from Prefect: the feature-audit flow passes on a store built by runs and
ends Failed naming the symbol and feature of a value altered in SQL; a features run whose drift
check finds a regime change ends in the Completed state "Feature drift" (alerted) with the
statistics and drift tables on its page."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flows.audit import feature_audit
from flows.features import features
from mfs import ingest
from tests.flows.test_collect import artifacts_of

pytestmark = pytest.mark.usefixtures("prefect_harness")
END = pd.Timestamp("2026-11-20 16:30", tz="America/New_York").tz_convert("UTC")  # after that session's close


def _rows(artifact) -> list[dict]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_the_audit_flow_passes_then_fails_naming_symbol_and_feature(db, conn, fake_yahoo, config_env):
    config_env(MFS_SYMBOLS="AAPL,MSFT", MFS_CLOCK=END.isoformat())
    ingest.collect(["AAPL", "MSFT"], days=60, session=fake_yahoo(asof=END))
    state = features(market_hours_only=False, return_state=True)
    assert state.is_completed(), state

    passed = feature_audit(symbols=["AAPL", "MSFT"], return_state=True)
    assert passed.is_completed() and passed.name == "Completed", passed
    found = artifacts_of(passed.state_details.flow_run_id)
    assert "passed" in found["feature-audit-summary"].data
    assert {r["symbol"] for r in _rows(found["feature-audit-symbols"])} == {"AAPL", "MSFT"}

    with conn.cursor() as cur:
        cur.execute(
            "UPDATE features SET rsi_14 = rsi_14 * (1 + 1e-6) WHERE symbol = 'AAPL' AND interval = '1d' "
            "AND ts = (SELECT max(ts) FROM features WHERE symbol = 'AAPL' AND interval = '1d')"
        )
    conn.commit()
    failed = feature_audit(sample=2, return_state=True)
    assert failed.is_failed() and "AAPL" in failed.message and "rsi_14" in failed.message, failed
    summary = artifacts_of(failed.state_details.flow_run_id)["feature-audit-summary"].data
    assert "**AAPL 1d rsi_14**" in summary


def test_a_features_run_with_drifting_features_ends_feature_drift(db, fake_yahoo, config_env):
    symbols = ["NVDA", "AMZN", "META", "JNJ", "PG"]
    config_env(MFS_SYMBOLS=",".join(symbols), MFS_CLOCK=END.isoformat())
    faults = {s: "volatility:2026-11-16:5" for s in symbols}
    ingest.collect(symbols, days=365, session=fake_yahoo(asof=END, faults=faults))

    state = features(market_hours_only=False, return_state=True)

    assert state.is_completed() and state.name == "Feature drift", state
    assert "volatility_20 1h (all)" in state.message
    found = artifacts_of(state.state_details.flow_run_id)
    drift = _rows(found["features-drift"])
    assert drift[0]["status"] == "drift" and {"volatility_20", "range_pct"} <= {
        r["feature"] for r in drift if r["status"] == "drift"
    }
    stats = _rows(found["features-statistics"])
    assert {(r["interval"], r["scope"]) for r in stats} == {
        (i, s) for i in ("1h", "1d") for s in ("written", "cross_section")
    }
    assert "drifting feature(s)" in found["features-summary"].data
