"""full-backfill under the Prefect harness: bars, features of every interval (one run), aggregates —
each stage a flow run whose id is its pipeline_runs row."""

from __future__ import annotations

import json
import logging

import pytest

from flows.full_backfill import full_backfill
from tests.flows.test_collect import artifacts_of, flow_run_name

pytestmark = pytest.mark.usefixtures("prefect_harness", "fake_yahoo")


def test_full_backfill_lands_bars_features_and_aggregates(conn, config_env, caplog):
    config_env(MFS_SYMBOLS="AAPL,MSFT")
    with caplog.at_level(logging.INFO, logger="mfs"):
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
    # The run's own page carries every stage's per-symbol results, one row per symbol and interval.
    run = state.state_details.flow_run_id
    arts = artifacts_of(run)
    data = arts["full-backfill-symbols"].data
    table = {(r["symbol"], r["interval"]): r for r in (json.loads(data) if isinstance(data, str) else data)}
    assert set(table) == {(s, i) for s in ("AAPL", "MSFT") for i in ("1h", "1d")}
    for row in table.values():
        assert (row["bars"], row["features"]) == ("ok", "ok") and row["bars inserted"] > 0
        assert row["feature rows"] == row["bars inserted"]  # a first backfill: one feature row per bar
    summary = arts["full-backfill-summary"].data
    assert "**backfill**" in summary and "**features**" in summary
    assert f"inserted {sum(r['bars inserted'] for r in table.values())}," in summary
    assert flow_run_name(run).startswith("full-backfill 1h+1d · 40 days · ")
    # Log lines in words: symbols counted once, not once per interval.
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("run finished, completed: 2 symbols × 2 intervals (4 ok)") for m in messages), messages
    assert any(m.startswith("aggregates refreshed for every pending change: ") for m in messages), messages
    assert any(m.startswith(("retention off", "retention of ")) for m in messages), messages
    assert not any("buckets=" in m or "window=None" in m for m in messages)
