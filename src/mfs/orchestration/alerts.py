"""Alerts: Prefect automations that POST to the webhook in MFS_ALERT_WEBHOOK_URL when a flow run
ends Failed, Crashed or TimedOut, or completes with high-severity data anomalies or drifting
features, and when a run is still running after runs.slow_factor × its expected runtime
(runs.expected_runtime_s).
Without a URL: say so in the logs and create only a disabled automation whose name and
description say why (the Automations page of the UI is then not silently empty).

Idempotent: our automations (names starting ``mfs-alert``) are replaced on every setup. The URL
is stored in a Prefect Webhook block (a secret field), never in the repository.
Run against a server: ``PREFECT_API_URL=… python -m mfs.orchestration.alerts``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit
from uuid import UUID

from mfs.config import get_config
from mfs.flow_names import flow_of_config_key
from mfs.logs import get_logger

if TYPE_CHECKING:
    from prefect.automations import AutomationCore
    from prefect.events.schemas.automations import EventTrigger

log = get_logger("mfs.orchestration.alerts")
PREFIX = "mfs-alert"
BLOCK_NAME = "mfs-alerts"
FAILURE_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
# A completed run whose data has high-severity anomalies (mfs.orchestration.runtime).
ANOMALY_EVENT = "prefect.flow-run.Data anomalies"
# A completed features run whose drift check found drifting features (mfs.orchestration.runtime).
DRIFT_EVENT = "prefect.flow-run.Feature drift"
# Everything that ends a Running state; "Market closed", "Nothing new" and "Data anomalies" are
# our named Completed states (mfs.orchestration.runtime).
FINAL_EVENTS = FAILURE_EVENTS | {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Market closed",
    "prefect.flow-run.Nothing new",
    ANOMALY_EVENT,
    DRIFT_EVENT,
}
MIN_PROACTIVE_S = 10.0  # Prefect refuses proactive triggers with a shorter window
PAYLOAD = (
    '{"text": "mfs alert: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}", '
    '"flow": "{{ flow.name }}", "flow_run_id": "{{ flow_run.id }}", '
    '"state": "{{ flow_run.state.name }}", "reason": "%s"}'
)


def webhook_url() -> str | None:
    return os.environ.get("MFS_ALERT_WEBHOOK_URL", "").strip() or None


ALERTS_OFF = "alerts are off: MFS_ALERT_WEBHOOK_URL is not set (set it, then run `mfs stack deploy`)"


def alerts_status() -> str:
    """Whether alerts are on, in a line for `mfs stack status`: off and why, or where they go
    (the webhook's scheme and host only: its path or query may hold a token)."""
    url = webhook_url()
    if url is None:
        return ALERTS_OFF
    parts = urlsplit(url)
    return f"alerts on: failed, slow and anomalous runs POST to {parts.scheme}://{parts.hostname or '?'}/…"


def _on_each_flow_run(events: set[str]) -> EventTrigger:
    """Fires once for each flow-run event of ``events``, as it happens."""
    # deferred: Prefect's client and events are ~700 ms (python -X importtime); `mfs stack status` asks alerts_status,
    # which needs none
    from prefect.events.schemas.automations import EventTrigger, Posture

    return EventTrigger(
        expect=events,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        posture=Posture.Reactive,
        threshold=1,
        within=dt.timedelta(0),
    )


def _alerts_off_notice() -> AutomationCore:
    """A disabled automation whose name and description say why there are no alerts: what the
    Automations page of the UI shows instead of an empty list."""
    # deferred: Prefect's client and events are ~700 ms (python -X importtime); `mfs stack status` asks alerts_status,
    # which needs none
    from prefect.automations import AutomationCore
    from prefect.events.actions import DoNothing

    return AutomationCore(
        name=f"{PREFIX}s-off: MFS_ALERT_WEBHOOK_URL is not set",
        description=ALERTS_OFF[0].upper() + ALERTS_OFF[1:] + "; this placeholder does nothing.",
        enabled=False,
        trigger=_on_each_flow_run(FAILURE_EVENTS),
        actions=[DoNothing()],
    )


def _state_alert(block_id: UUID, name: str, event: str, when: str, says: str) -> AutomationCore:
    """POST to the webhook each time a flow run emits ``event`` (a named Completed state)."""
    # deferred: Prefect's client and events are ~700 ms (python -X importtime); `mfs stack status` asks alerts_status,
    # which needs none
    from prefect.automations import AutomationCore
    from prefect.events.actions import CallWebhook

    return AutomationCore(
        name=f"{PREFIX}-{name}",
        description=f"POST to MFS_ALERT_WEBHOOK_URL when {when}",
        trigger=_on_each_flow_run({event}),
        actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD % says)],
    )


def desired_automations(block_id: UUID) -> list[AutomationCore]:
    """The automations we want: one for failures, one per flow for slow runs."""
    # deferred: Prefect's client and events are ~700 ms (python -X importtime); `mfs stack status` asks alerts_status,
    # which needs none
    from prefect.automations import AutomationCore
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture

    runs = get_config().runs
    automations = [
        AutomationCore(
            name=f"{PREFIX}-failed-runs",
            description="POST to MFS_ALERT_WEBHOOK_URL when a flow run fails, crashes or times out",
            trigger=_on_each_flow_run(FAILURE_EVENTS),
            actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD % "run did not complete")],
        ),
        _state_alert(
            block_id,
            "data-anomalies",
            ANOMALY_EVENT,
            "a run completes with high-severity data anomalies",
            "high-severity data anomalies: see the data_quality view",
        ),
        _state_alert(
            block_id,
            "feature-drift",
            DRIFT_EVENT,
            "a features run completes with drifting features",
            "drifting features: see the feature_drift view",
        ),
    ]
    for key, seconds in sorted(runs.expected_runtime_s.items()):
        limit = max(MIN_PROACTIVE_S, seconds * runs.slow_factor)
        automations.append(
            AutomationCore(
                name=f"{PREFIX}-slow-{flow_of_config_key(key)}",
                description=f"POST when a {key} run is still running after {limit:.0f} s "
                f"({runs.slow_factor} × expected {seconds:.0f} s)",
                trigger=EventTrigger(
                    after={"prefect.flow-run.Running"},
                    expect=FINAL_EVENTS,
                    match={"prefect.resource.id": "prefect.flow-run.*"},
                    match_related={"prefect.resource.role": "flow", "prefect.resource.name": flow_of_config_key(key)},
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=dt.timedelta(seconds=limit),
                ),
                actions=[
                    CallWebhook(block_document_id=block_id, payload=PAYLOAD % f"running longer than {limit:.0f} s")
                ],
            )
        )
    return automations


def setup_alerts() -> list[str]:
    """Create (or replace) the alert automations on the server in PREFECT_API_URL; returns
    their names — none when MFS_ALERT_WEBHOOK_URL is unset."""
    # deferred: Prefect's client and blocks, ~700 ms (python -X importtime) (see above)
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client

    url = webhook_url()
    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith(PREFIX):
                client.delete_automation(automation.id)
        if url is None:
            client.create_automation(_alerts_off_notice())  # the Automations page says why it has none
            log.warning("MFS_ALERT_WEBHOOK_URL is not set: no alert automations created")
            return []
        webhook = Webhook(method="POST", url=url, headers={"Content-Type": "application/json"}, allow_private_urls=True)
        block_id = cast(UUID, webhook.save(BLOCK_NAME, overwrite=True))  # sync_compatible: no coroutine here
        names = []
        for wanted in desired_automations(block_id):
            client.create_automation(wanted)
            names.append(wanted.name)
    log.info("alert automations created", automations=names)
    return names


if __name__ == "__main__":
    created = setup_alerts()
    print(f"alert automations: {', '.join(created) if created else 'none (MFS_ALERT_WEBHOOK_URL is not set)'}")
    sys.exit(0)
