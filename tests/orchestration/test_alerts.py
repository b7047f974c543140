"""Alert automations on a Prefect server (the test harness): created from config with a webhook
URL, replaced (not duplicated) on re-run, and none — with a log line saying so — without a URL."""

from __future__ import annotations

import datetime as dt

import pytest
from prefect.client.orchestration import get_client

from mfs.cli.main import main
from mfs.config import get_config
from mfs.orchestration.alerts import FAILURE_EVENTS, setup_alerts

pytestmark = pytest.mark.usefixtures("prefect_harness")


def ours() -> dict:
    with get_client(sync_client=True) as client:
        return {a.name: a for a in client.read_automations() if a.name.startswith("mfs-alert")}


def test_with_a_webhook_url_failed_and_slow_runs_alert(config_env):
    config_env(MFS_ALERT_WEBHOOK_URL="http://127.0.0.1:9/alerts")
    setup_alerts()
    created = setup_alerts()  # idempotent: replaced, not duplicated
    automations = ours()
    assert (
        sorted(created)
        == sorted(automations)
        == [
            "mfs-alert-data-anomalies",
            "mfs-alert-failed-runs",
            "mfs-alert-feature-drift",
            "mfs-alert-slow-collect",
            "mfs-alert-slow-features",
            "mfs-alert-slow-full-backfill",
        ]
    )
    failed = automations["mfs-alert-failed-runs"].trigger
    assert (
        set(failed.expect)
        == FAILURE_EVENTS
        == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
    )
    assert set(automations["mfs-alert-data-anomalies"].trigger.expect) == {"prefect.flow-run.Data anomalies"}
    assert set(automations["mfs-alert-feature-drift"].trigger.expect) == {"prefect.flow-run.Feature drift"}
    runs = get_config().runs
    slow = automations["mfs-alert-slow-collect"].trigger
    assert slow.posture == "Proactive" and set(slow.after) == {"prefect.flow-run.Running"}
    assert slow.within == dt.timedelta(seconds=runs.expected_runtime_s["collect"] * runs.slow_factor)
    assert automations["mfs-alert-slow-collect"].actions[0].type == "call-webhook"


def test_without_a_url_no_alert_is_created_and_the_automations_page_and_stack_status_say_why(
    monkeypatch, caplog, capsys, config_env
):
    config_env(MFS_ALERT_WEBHOOK_URL="http://127.0.0.1:9/alerts")
    setup_alerts()
    monkeypatch.delenv("MFS_ALERT_WEBHOOK_URL", raising=False)
    assert setup_alerts() == []
    assert "MFS_ALERT_WEBHOOK_URL is not set" in caplog.text
    # The Automations page lists one disabled placeholder that says why, instead of nothing.
    (notice,) = ours().values()
    assert notice.name == "mfs-alerts-off: MFS_ALERT_WEBHOOK_URL is not set" and not notice.enabled
    assert "set it, then run `mfs stack deploy`" in notice.description
    assert [a.type for a in notice.actions] == ["do-nothing"]
    # mfs stack status says so too; with a URL, where alerts go (not the URL's path: it may hold a token).
    assert main(["stack", "status"]) == 0
    assert "alerts:  alerts are off: MFS_ALERT_WEBHOOK_URL is not set" in capsys.readouterr().out
    config_env(MFS_ALERT_WEBHOOK_URL="https://hooks.example.com/services/T0/SECRET")
    assert main(["stack", "status"]) == 0
    out = capsys.readouterr().out
    assert "alerts:  alerts on: failed, slow and anomalous runs POST to https://hooks.example.com/" in out
    assert "SECRET" not in out
