"""The collect flow under the Prefect test harness, against the real database and the offline
Yahoo (the real yfinance code fed by mfs.sources.fake_yahoo)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.collect import collect

pytestmark = pytest.mark.usefixtures("prefect_harness", "fake_yahoo")
UTC = dt.UTC


@pytest.fixture(autouse=True)
def _symbols_and_clock(config_env):
    # The offline Yahoo's clock: a Friday afternoon, so a 3-day window always holds sessions
    # (with the real clock, a Tuesday morning after a Monday holiday would hold none).
    config_env(MFS_SYMBOLS="AAPL,MSFT", MFS_SYNTHETIC_ASOF="2026-11-20T20:00:00Z")


def artifacts_of(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def pipeline_run(conn, run_id: str):
    with conn.cursor() as cur:
        cur.execute("SELECT flow, status, counts, error_summary FROM pipeline_runs WHERE run_id = %s", (run_id,))
        return cur.fetchone()


def test_injected_failed_symbol_ends_failed_and_the_artifact_lists_it(conn):
    state = collect(symbols=["AAPL", "ZZZZ"], days=3, offline=True, market_hours_only=False, return_state=True)

    assert state.is_failed(), state
    assert "ZZZZ" in state.message
    run_id = str(state.state_details.flow_run_id)
    arts = artifacts_of(state.state_details.flow_run_id)
    data = arts["collect-symbols"].data
    # By default a run collects every configured interval: hourly and daily bars.
    table = {(row["symbol"], row["stage"]): row for row in (json.loads(data) if isinstance(data, str) else data)}
    assert set(table) == {(s, f"collect_{i}") for s in ("AAPL", "ZZZZ") for i in ("1h", "1d")}
    for interval in ("1h", "1d"):
        assert table["ZZZZ", f"collect_{interval}"]["status"] == "failed"
        assert table["ZZZZ", f"collect_{interval}"]["reason"]
        assert table["AAPL", f"collect_{interval}"]["status"] == "ok"
        assert table["AAPL", f"collect_{interval}"]["bars fetched"] > 0
        assert "feature rows" not in table["AAPL", f"collect_{interval}"]  # a collect writes no features
    summary = arts["collect-summary"].data
    assert "ZZZZ" in summary and "**1 failed symbol(s)**" in summary
    # pipeline_runs is keyed by the Prefect flow run id, so the UI and the database line up
    flow, status, counts, error = pipeline_run(conn, run_id)
    assert (flow, status) == ("collect", "failed") and "ZZZZ" in error
    assert counts["symbols_failed"] == 2 and counts["inserted"] > 0
    with conn.cursor() as cur:
        cur.execute("SELECT interval, count(*) FROM market_data WHERE symbol = 'AAPL' GROUP BY interval")
        stored = dict(cur.fetchall())
    assert stored["1h"] > 0 and stored["1d"] > 0


def test_failures_within_the_tolerance_complete_and_are_listed(conn, config_env):
    config_env(MFS_RUNS__FAILED_SYMBOL_TOLERANCE="1")
    state = collect(symbols=["AAPL", "ZZZZ"], days=3, offline=True, market_hours_only=False, return_state=True)

    # ZZZZ fails in both intervals: one failed symbol, within a tolerance of one.
    assert state.is_completed(), state
    summary = artifacts_of(state.state_details.flow_run_id)["collect-summary"].data
    assert "ZZZZ" in summary and "1 failed symbol" in summary


def test_a_holiday_run_ends_market_closed_without_fetching_and_is_recorded(conn):
    christmas = dt.datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # 10:00 New York, NYSE closed
    state = collect(asof=christmas, offline=True, return_state=True)

    assert state.is_completed() and state.name == "Market closed", state
    assert "not an NYSE session" in state.message
    with conn.cursor() as cur:  # recorded as such; nothing fetched
        cur.execute("SELECT run_id, flow, status, error_summary FROM pipeline_runs")
        assert cur.fetchall() == [(str(state.state_details.flow_run_id), "collect", "market_closed", state.message)]
        cur.execute("SELECT count(*) FROM symbol_runs")
        assert cur.fetchone()[0] == 0


def test_half_day_afternoon_is_closed_but_the_morning_runs(conn):
    # 2026-11-27, the day after Thanksgiving: NYSE closes at 13:00 New York.
    late = dt.datetime(2026, 11, 27, 20, 0, tzinfo=UTC)  # 15:00 New York
    state = collect(asof=late, offline=True, return_state=True)
    assert state.name == "Market closed" and "closed at 13:00" in state.message

    morning = dt.datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 New York
    state = collect(symbols=["AAPL"], days=2, asof=morning, offline=True, return_state=True)
    assert state.is_completed() and state.name == "Completed", state


def test_high_severity_data_anomalies_end_the_run_in_a_state_that_says_so(conn, config_env):
    config_env(MFS_SYNTHETIC_FAULTS='{"AAPL": "spike:2026-11-19T16:30:00Z:100"}')
    state = collect(symbols=["AAPL", "MSFT"], days=3, offline=True, market_hours_only=False, return_state=True)

    assert state.is_completed() and state.name == "Data anomalies", state
    assert "AAPL 1h 2026-11-19T16:30:00+00:00: power_of_ten" in state.message
    arts = artifacts_of(state.state_details.flow_run_id)
    data = arts["collect-anomalies"].data
    table = json.loads(data) if isinstance(data, str) else data
    assert [(row["symbol"], row["kind"], row["held back"]) for row in table] == [("AAPL", "power_of_ten", "yes")]
    assert "**data quality: 1 new anomalies" in arts["collect-summary"].data
    _flow, status, counts, _error = pipeline_run(conn, str(state.state_details.flow_run_id))
    assert status == "completed" and counts["anomalies"]["high"] == 1


def test_a_clean_run_completes_plainly(conn):
    state = collect(symbols=["AAPL"], days=3, offline=True, market_hours_only=False, return_state=True)
    assert state.is_completed() and state.name == "Completed", state
    arts = artifacts_of(state.state_details.flow_run_id)
    assert "collect-anomalies" not in arts
    # the summary's figures are the table's totals; the table has a collect's columns only
    data = arts["collect-symbols"].data
    table = json.loads(data) if isinstance(data, str) else data
    assert list(table[0]) == [
        *("symbol", "stage", "status", "bars fetched", "bars inserted", "bars updated", "bars quarantined"),
        *("reason", "seconds", "timed"),
    ]
    totals = [sum(row[f"bars {k}"] for row in table) for k in ("fetched", "inserted", "updated", "quarantined")]
    assert totals[0] > 0
    assert "bars fetched {}, inserted {}, updated {}, quarantined {}".format(*totals) in arts["collect-summary"].data


def flow_run_name(flow_run_id) -> str:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).name


def test_a_run_is_named_after_what_it_covers_and_one_with_nothing_new_says_so(conn):
    friday = dt.datetime(2026, 11, 20, 18, 5, tzinfo=UTC)  # 13:05 New York, the offline Yahoo's day
    first = collect(symbols=["AAPL"], interval="1h", days=3, asof=friday, offline=True, return_state=True)
    assert first.is_completed() and first.name == "Completed", first
    assert flow_run_name(first.state_details.flow_run_id) == "collect 1h · AAPL · 3 days · 2026-11-20 13:05 ET"

    # The same window again: every bar is stored already, and the run's state says so.
    again = collect(symbols=["AAPL"], interval="1h", days=3, asof=friday, offline=True, return_state=True)
    assert again.is_completed() and again.name == "Nothing new", again
    assert "none new or changed" in again.message and again.result()["inserted"] == 0
    _flow, status, counts, _error = pipeline_run(conn, str(again.state_details.flow_run_id))
    assert status == "completed" and counts["fetched"] > 0 and counts["updated"] == 0
