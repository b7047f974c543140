"""full-backfill under the Prefect harness: bars, features of every interval (one run), aggregates —
each stage a flow run whose id is its pipeline_runs row."""

from __future__ import annotations

import pytest

from flows.full_backfill import full_backfill

pytestmark = pytest.mark.usefixtures("prefect_harness", "fake_yahoo")


def test_full_backfill_lands_bars_features_and_aggregates(conn, config_env):
    config_env(MFS_SYMBOLS="AAPL,MSFT")
    state = full_backfill(days=40, offline=True, return_state=True)

    assert state.is_completed(), state
    result = state.result()
    assert result["bars"]["symbols_ok"] == 4  # 2 symbols × (1h, 1d)
    assert result["features"]["symbols_ok"] == 4  # one features run: 2 symbols × (1h, 1d)
    with conn.cursor() as cur:
        cur.execute("SELECT interval, count(DISTINCT symbol), count(*) FROM market_data GROUP BY 1 ORDER BY 1")
        bars = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT interval, count(*) FROM features GROUP BY 1 ORDER BY 1")
        feats = dict(cur.fetchall())
        cur.execute("SELECT flow, status FROM pipeline_runs ORDER BY started_at")
        runs = cur.fetchall()
    assert bars["1h"][0] == 2 and bars["1h"][1] > 2 * 7 * 20
    assert feats["1h"] == bars["1h"][1] and feats["1d"] == bars["1d"][1]
    assert runs == [("backfill", "completed"), ("features", "completed")]
