"""The features flow under the Prefect harness: a symbol whose worker fails makes the run Failed
and the artifact lists it with the other symbols' feature rows; market-closed hours end quickly."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.features import features
from mfs import ingest
from tests.flows.test_collect import artifacts_of

pytestmark = pytest.mark.usefixtures("prefect_harness", "fake_yahoo")


def table_of(flow_run_id, key: str) -> dict[tuple[str, str], dict]:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key={"any_": [key]}, flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {(row["symbol"], row["stage"]): row for row in data}


def test_a_failing_symbol_fails_the_run_and_the_artifact_lists_it(db, monkeypatch, config_env):
    config_env(MFS_SYMBOLS="AAPL,MSFT")
    ingest.collect(["AAPL", "MSFT"], days=30, offline=True)
    monkeypatch.setenv("MFS_FEATURE_FAULTS", json.dumps({"MSFT": "raise"}))

    state = features(market_hours_only=False, wait_for_collect=True, return_state=True)

    assert state.is_failed() and "MSFT" in state.message, state
    table = table_of(state.state_details.flow_run_id, "features-symbols")
    # By default every configured interval: hourly and daily features.
    assert set(table) == {(s, f"features_{i}") for s in ("AAPL", "MSFT") for i in ("1h", "1d")}
    for interval in ("1h", "1d"):
        assert table["MSFT", f"features_{interval}"]["status"] == "failed"
        assert table["MSFT", f"features_{interval}"]["reason"]
        assert table["AAPL", f"features_{interval}"]["status"] == "ok"
    assert table["AAPL", "features_1h"]["feature rows"] > 100 and table["AAPL", "features_1d"]["feature rows"] > 10
    # only the columns that mean something for a features run; the timing note in a word or two
    row = table["AAPL", "features_1h"]
    assert list(row) == ["symbol", "stage", "status", "bars read", "feature rows", "reason", "seconds", "timed"]
    assert row["bars read"] >= row["feature rows"] and row["timed"] in {"symbol", "batch of 2"}
    summary = artifacts_of(state.state_details.flow_run_id)["features-summary"].data
    assert isinstance(summary, str)
    assert f"feature rows written {sum(r['feature rows'] for r in table.values())}" in summary
    assert "fetched" not in summary and "quarantined" not in summary


def test_features_outside_market_hours_end_market_closed(db):
    saturday = dt.datetime(2026, 11, 28, 15, tzinfo=dt.UTC)
    state = features(asof=saturday, return_state=True)
    assert state.is_completed() and state.name == "Market closed", state


def test_a_features_run_with_no_new_bar_ends_nothing_new_and_is_named_for_its_interval(db, config_env):
    config_env(MFS_SYMBOLS="AAPL")
    ingest.collect(["AAPL"], days=10, offline=True)
    first = features(interval="1h", market_hours_only=False, return_state=True)
    assert first.is_completed() and first.name == "Completed", first

    again = features(interval="1h", market_hours_only=False, return_state=True)
    assert again.is_completed() and again.name == "Nothing new", again
    assert "no feature row to write" in again.message
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(again.state_details.flow_run_id).name
    assert name.startswith("features 1h · ") and name.endswith(" ET"), name
